// A libvirt guest's serial console read live from its pty (`virsh ttyconsole`): vm.deploy over
// the protocol has no console-log option, so the test reads what the guest prints from the pty.
import { constants, openSync } from "node:fs";
import { ReadStream } from "node:tty";
import { run } from "../../src/exec.js";
import { type GuestConsole, parseGuestConsole } from "../../src/lab/guest-image.js";

export interface GuestConsoleReader {
  text(): string;
  parsed(): GuestConsole;
  close(): void;
}

export async function openGuestConsole(domain: string, uri = "qemu:///system"): Promise<GuestConsoleReader> {
  const { stdout } = await run("virsh", ["-c", uri, "ttyconsole", domain]);
  const pty = stdout.trim();
  if (!pty.startsWith("/dev/pts/")) throw new Error(`domain ${domain} has no pty console (got ${JSON.stringify(pty)})`);
  // Raw and without echo: the guest's output must not be fed back into its serial input.
  await run("stty", ["-F", pty, "raw", "-echo"]);
  const stream = new ReadStream(openSync(pty, constants.O_RDONLY | constants.O_NOCTTY));
  let text = "";
  stream.on("data", (chunk: Buffer | string) => {
    text += chunk.toString();
  });
  stream.on("error", () => undefined); // EIO once the guest is gone
  return {
    text: () => text,
    parsed: () => parseGuestConsole(text),
    close: () => stream.destroy(),
  };
}
