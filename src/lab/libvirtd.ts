import { mkdirSync } from "node:fs";
import { V6Error } from "../errors.js";
import { run } from "../exec.js";
import { LibvirtConnection } from "../hypervisor/kvm/libvirt.js";

/**
 * Makes sure a system libvirtd answers at `uri` (design section 6: there is no systemd on the
 * lab and CI machines, so the lab and the VM tests start `virtlogd -d` and `libvirtd -d`
 * themselves). Returns whether it had to start them. Safe when several processes race: a second
 * daemon exits on the pid-file lock and the first one answers.
 */
export async function ensureLibvirtd(uri = "qemu:///system", timeoutMs = 30_000): Promise<boolean> {
  if (await answers(uri)) return false;
  for (const directory of ["/var/log/libvirt", "/var/run/libvirt", "/var/lib/libvirt"]) mkdirSync(directory, { recursive: true });
  await run("virtlogd", ["-d"], { okExitCodes: [0, 1] });
  await run("libvirtd", ["-d"], { okExitCodes: [0, 1] });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await answers(uri)) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new V6Error("unavailable", `libvirtd did not answer at ${uri} within ${timeoutMs} ms after starting it (see /var/log/libvirt)`);
}

async function answers(uri: string): Promise<boolean> {
  try {
    const connection = await LibvirtConnection.open(uri);
    await connection.close();
    return true;
  } catch (error) {
    if (error instanceof V6Error && error.code === "unavailable") return false;
    throw error;
  }
}
