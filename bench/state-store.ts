// Time of one atomic StateStore save (write temp, fsync, rename, fsync dir) and of one load, for a
// desired state of 1 and 1,000 guest ports. Run: node --import tsx bench/state-store.ts
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateStore } from "../src/daemon/state-store.js";

interface Port {
  vm: string;
  mac: string;
  device: string;
  network: string;
  addresses: string[];
}

function desired(ports: number): { ports: Port[] } {
  return {
    ports: Array.from({ length: ports }, (_, index) => ({
      vm: `9f0c1a2b-0000-4000-8000-${index.toString(16).padStart(12, "0")}`,
      mac: `52:54:00:${((index >> 16) & 0xff).toString(16).padStart(2, "0")}:${((index >> 8) & 0xff).toString(16).padStart(2, "0")}:${(index & 0xff).toString(16).padStart(2, "0")}`,
      device: `vnet${index}`,
      network: "net-2001-db8-1-1",
      addresses: [`2001:db8:1:1::${(index + 0x100).toString(16)}`],
    })),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const dir = await mkdtemp(join(tmpdir(), "v6agent-bench-state-"));
try {
  for (const ports of [1, 1000]) {
    const path = join(dir, `state-${ports}.json`);
    const store = new StateStore({ path, version: 1, validate: (raw) => raw as { ports: Port[] }, empty: () => ({ ports: [] as Port[] }) });
    const value = desired(ports);
    const saves: number[] = [];
    for (let round = 0; round < 50; round++) {
      const start = process.hrtime.bigint();
      await store.save(value);
      saves.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    const loads: number[] = [];
    for (let round = 0; round < 50; round++) {
      const start = process.hrtime.bigint();
      await store.load();
      loads.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    saves.sort((a, b) => a - b);
    loads.sort((a, b) => a - b);
    const size = (await stat(path)).size;
    console.log(
      `ports=${ports} file=${(size / 1024).toFixed(1)} KiB save p50=${percentile(saves, 50).toFixed(2)} ms p95=${percentile(saves, 95).toFixed(2)} ms load p50=${percentile(loads, 50).toFixed(2)} ms p95=${percentile(loads, 95).toFixed(2)} ms`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
