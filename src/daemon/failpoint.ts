/**
 * Crash-test failpoints: `V6AGENT_FAILPOINT=<name>` (read once at start) makes the agent SIGKILL
 * itself when it reaches that point, so tests can kill it at a precise step of a command.
 * Names: `nic.plug:after-rules`, `nic.plug:after-attach`, `nic.plug:before-report`.
 * Unset in production; an unknown name never fires.
 */
const armed = process.env.V6AGENT_FAILPOINT;

export function failpoint(name: string): void {
  if (armed === name) process.kill(process.pid, "SIGKILL");
}
