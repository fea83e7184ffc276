/**
 * A writer for the "newc" cpio format, the one the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Pure: entries in, bytes out,
 * so building a guest image needs neither the `cpio` tool nor a working directory.
 */
export type CpioEntry =
  | { kind: "directory"; path: string; mode?: number }
  | { kind: "file"; path: string; data: Uint8Array; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "char-device"; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(value: number): string {
  return value.toString(16).padStart(8, "0");
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(inode: number, name: string, mode: number, data: Uint8Array, rdevMajor = 0, rdevMinor = 0): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, "utf8");
  const header = Buffer.from(
    [
      "070701",
      hex8(inode),
      hex8(mode),
      hex8(0), // uid
      hex8(0), // gid
      hex8(1), // nlink
      hex8(0), // mtime: fixed, so the same inputs give the same image
      hex8(data.length),
      hex8(0), // devmajor
      hex8(0), // devminor
      hex8(rdevMajor),
      hex8(rdevMinor),
      hex8(nameBytes.length),
      hex8(0), // check
    ].join(""),
    "ascii",
  );
  const head = header.length + nameBytes.length;
  return [header, nameBytes, pad4(head), Buffer.from(data), pad4(data.length)];
}

export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let inode = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, "");
    if (name === "" || name.split("/").includes("..")) throw new Error(`cpio: bad path ${JSON.stringify(entry.path)}`);
    switch (entry.kind) {
      case "directory":
        parts.push(...record(inode++, name, S_IFDIR | (entry.mode ?? 0o755), new Uint8Array()));
        break;
      case "file":
        parts.push(...record(inode++, name, S_IFREG | (entry.mode ?? 0o644), entry.data));
        break;
      case "symlink":
        parts.push(...record(inode++, name, S_IFLNK | 0o777, Buffer.from(entry.target, "utf8")));
        break;
      case "char-device":
        parts.push(...record(inode++, name, S_IFCHR | (entry.mode ?? 0o600), new Uint8Array(), entry.major, entry.minor));
        break;
    }
  }
  parts.push(...record(0, "TRAILER!!!", 0, new Uint8Array()));
  return Buffer.concat(parts);
}
