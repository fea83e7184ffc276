import { defineConfig } from "vitest/config";

// Three tiers (design section 6): unit tests need nothing; integration tests need root and
// network namespaces; e2e tests need root, libvirtd and QEMU. `vitest run` runs all three.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Installs the package into this host's /usr, /etc/v6agent and /var/lib/v6agent: its own
          // tier, alone, so no other test sees a host-wide config it did not write.
          exclude: ["test/integration/packaging/deb.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "packaging",
          include: ["test/integration/packaging/deb.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          // Real VMs under software emulation: two cores, so one file at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
