/**
 * Exit codes of `v6agent`. packaging/v6agent.service's RestartPreventExitStatus names the two a
 * restart cannot cure: a refused host and an invalid configuration.
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Not implemented, or refused by the host (e.g. a XenServer host on Open vSwitch). */
export const EXIT_NOT_IMPLEMENTED = 3;
/** `v6agent status`: no daemon answers on the status socket (LSB's "program is not running"). */
export const EXIT_NOT_RUNNING = 3;
/** `v6agent run --check`: the host is not as the agent would leave it; a start would change what it lists. */
export const EXIT_WOULD_CHANGE = 4;
/** `v6agent run` could not load its configuration (EX_CONFIG of sysexits.h). */
export const EXIT_CONFIG = 78;

/**
 * Thrown by a command that finished but must exit with a particular non-zero code (diag's worst
 * status), or that failed with `error` and a code of its own (an invalid configuration: 78).
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    readonly error?: unknown,
  ) {
    super(`exit ${exitCode}`);
    this.name = "CliExit";
  }
}

/**
 * For a one-shot command that connected to a hypervisor: ends the process a second after the
 * command is done (with the exit code cli.ts sets) even if a library still holds a handle. The
 * XenServer client's `event.from` long poll can outlive its close() (the daemon's stop works
 * around the same); the timer is unref'd, so a process with nothing left exits at once.
 */
export function endSoon(): void {
  setTimeout(() => process.exit(), 1_000).unref();
}
