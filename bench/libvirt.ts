/**
 * libvirt binding benchmark (issue 4): calls per second for list / XML on libvirt's test driver,
 * config-only NIC attach+detach on a real libvirtd (the test driver cannot attach), and the time
 * from `deployVm` to the guest's first DHCPv6 Solicit on the bridge. Prints one line per number.
 *
 *   node dist/bench/libvirt.js            (root; starts libvirtd when needed)
 */
import { randomUUID } from "node:crypto";
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Mac, parseMac } from "../src/addressing/index.js";
import { run, startDaemon } from "../src/exec.js";
import { ensureBridge, removeBridge } from "../src/hostnet/index.js";
import { interfaceXml, interfaceXmlForDetach, validateNic } from "../src/hypervisor/kvm/interface-xml.js";
import { KvmHypervisor } from "../src/hypervisor/kvm/kvm-hypervisor.js";
import { DeviceFlags, LibvirtConnection } from "../src/hypervisor/kvm/libvirt.js";
import { buildXml } from "../src/hypervisor/kvm/xml.js";
import { buildGuestImage } from "../src/lab/guest-image.js";
import { ensureLibvirtd } from "../src/lab/libvirtd.js";
import { uniqueName } from "../src/lab/names.js";
import { createLogger } from "../src/log.js";

const TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f";

async function rate(label: string, calls: number, concurrency: number, call: () => Promise<unknown>): Promise<void> {
  const start = process.hrtime.bigint();
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${label.padEnd(48)} ${(calls / seconds).toFixed(0).padStart(8)} calls/s  (${calls} calls, concurrency ${concurrency})`);
}

async function testDriver(): Promise<void> {
  const connection = await LibvirtConnection.open("test:///default");
  for (const concurrency of [1, 16]) {
    await rate("test:///default listDomains", 20_000, concurrency, () => connection.listDomains());
    await rate("test:///default domainXml", 20_000, concurrency, () => connection.domainXml(TEST_UUID));
  }
  await connection.close();
}

async function attachOnDaemon(): Promise<void> {
  const connection = await LibvirtConnection.open("qemu:///system");
  const uuid = randomUUID();
  await connection.defineDomain(
    buildXml({
      domain: {
        "@_type": "qemu",
        name: uniqueName("v6bench"),
        uuid,
        memory: { "@_unit": "MiB", "#text": "64" },
        os: { type: { "@_arch": "x86_64", "#text": "hvm" } },
      },
    }),
  );
  try {
    const nic = validateNic({ bridge: "v6benchbr0", mac: "52:54:00:be:0c:01" as Mac });
    const attach = interfaceXml(nic);
    const detach = interfaceXmlForDetach(nic.mac, nic.bridge);
    await rate("qemu:///system attach+detach NIC (config), pairs", 500, 1, async () => {
      await connection.attachDevice(uuid, attach, DeviceFlags.config);
      await connection.detachDevice(uuid, detach, DeviceFlags.config);
    });
    await rate("qemu:///system listDomains", 5_000, 1, () => connection.listDomains());
    await rate("qemu:///system domainXml", 5_000, 1, () => connection.domainXml(uuid));
  } finally {
    await connection.undefineDomain(uuid);
    await connection.close();
  }
}

async function deployToSolicit(): Promise<void> {
  const image = await buildGuestImage();
  const bridge = uniqueName("v6b");
  const workDir = mkdtempSync(join(tmpdir(), "v6-bench-"));
  chmodSync(workDir, 0o755);
  const hypervisor = new KvmHypervisor({ uri: "qemu:///system", domainType: "qemu", logger: createLogger("silent") });
  const uuid = randomUUID();
  await ensureBridge({ bridge });
  const outputPath = join(workDir, "tcpdump.out");
  const output = openSync(outputPath, "a");
  const tcpdump = startDaemon("tcpdump", ["-i", bridge, "-n", "-l", "-tt", "-c", "1", "--immediate-mode", "ip6 and udp dst port 547"], {
    outputFd: output,
  });
  closeSync(output);
  try {
    while (!readFileSync(outputPath, "utf8").includes("listening on")) await new Promise((resolve) => setTimeout(resolve, 50));
    await hypervisor.connect();
    const start = Date.now();
    await hypervisor.deployVm({
      name: uniqueName("v6bench"),
      uuid,
      memoryMiB: 256,
      vcpus: 1,
      boot: { kind: "kernel", kernel: image.kernel, initrd: image.initrd, cmdline: image.cmdline },
      nics: [{ bridge, mac: parseMac("52:54:00:be:0c:02") }],
      consoleLog: join(workDir, "console.log"),
    });
    const deployed = Date.now();
    await tcpdump.exited;
    const line = readFileSync(outputPath, "utf8")
      .split("\n")
      .find((entry) => /^\d+\.\d+ /.test(entry));
    if (line === undefined) throw new Error("tcpdump saw no DHCPv6 Solicit");
    const seen = Number(line.split(" ")[0]) * 1000;
    console.log(`${"deployVm call (define + start)".padEnd(48)} ${(deployed - start).toString().padStart(8)} ms`);
    console.log(`${"deployVm → first DHCPv6 Solicit on the bridge".padEnd(48)} ${(seen - start).toFixed(0).padStart(8)} ms  (QEMU TCG)`);
  } finally {
    await tcpdump.stop();
    await hypervisor.destroyVm(uuid).catch(() => undefined);
    await hypervisor.close();
    await removeBridge({ bridge }).catch(() => run("ip", ["link", "del", bridge], { okExitCodes: [0, 1] }));
    rmSync(workDir, { recursive: true, force: true });
  }
}

await testDriver();
if (process.getuid?.() === 0) {
  await ensureLibvirtd();
  await attachOnDaemon();
  await deployToSolicit();
} else {
  console.log("not root: skipping the libvirtd attach and deploy measurements");
}
