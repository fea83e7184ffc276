import { constants, openSync } from "node:fs";
import { ReadStream } from "node:tty";
import { V6Error } from "../errors.js";
import { run } from "../exec.js";
import { type GuestConsole, parseGuestConsole } from "./guest-image.js";

/**
 * A lab VM's serial console, read live from its pty (`virsh ttyconsole`): `vm.deploy` has no
 * console-file option, so the lab reads what the guest's init prints (src/lab/guest-image.ts).
 */
export class VmConsole {
  private text = "";

  private constructor(private readonly stream: ReadStream) {
    stream.on("data", (chunk: Buffer | string) => {
      this.text += chunk.toString();
    });
    stream.on("error", () => undefined); // EIO once the guest is gone
  }

  static async open(domain: string, uri = "qemu:///system"): Promise<VmConsole> {
    const { stdout } = await run("virsh", ["-c", uri, "ttyconsole", domain]);
    const pty = stdout.trim();
    if (!pty.startsWith("/dev/pts/"))
      throw new V6Error("host_failure", `domain ${domain} has no pty console (virsh said ${JSON.stringify(pty)})`);
    // Raw and without echo: the guest's output must not come back as its serial input.
    await run("stty", ["-F", pty, "raw", "-echo"]);
    return new VmConsole(new ReadStream(openSync(pty, constants.O_RDONLY | constants.O_NOCTTY)));
  }

  parsed(): GuestConsole {
    return parseGuestConsole(this.text);
  }

  /** Everything read so far. */
  output(): string {
    return this.text;
  }

  contains(text: string): boolean {
    return this.text.includes(text);
  }

  /** Waits until `probe` on the parsed console returns a value. */
  async waitFor<T>(what: string, probe: (console: GuestConsole) => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe(this.parsed());
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new V6Error("timeout", `${what}: not seen on the guest console within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  close(): void {
    this.stream.destroy();
  }
}
