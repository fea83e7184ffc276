import { Command, CommanderError } from "commander";
import { DEFAULT_CONFIG_PATH, loadAgentConfig } from "../daemon/config.js";
import { V6Error } from "../errors.js";
import { guestOsIds } from "../guestconfig/index.js";
import type { MgmtCommandOptions } from "../mgmt/cli.js";
import { VERSION } from "../version.js";
import { addrReport, formatAddrReport } from "./addr.js";
import type { DiagCommandOptions } from "./diag.js";
import { CliExit, EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_IMPLEMENTED, EXIT_USAGE } from "./exit.js";
import { type GuestConfigOptions, guestConfigCommand, guestOsHelp } from "./guest-config.js";
import type { LabCommandOptions } from "./lab.js";

// Each command imports its own modules when it runs: `v6agent run` is a long-lived daemon on
// every host, and the management server, lab and diag code it never runs would otherwise stay in
// its heap for good (issue 5/6 measured a few MB of RSS for them).

export function buildProgram(): Command {
  const program = new Command("v6agent")
    .description("Host agent for IPv6 shared networks on KVM and XenServer hypervisors")
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run 'v6agent --help' for usage)")
    .exitOverride();

  program
    .command("run")
    .description("run the agent daemon on this hypervisor host")
    .option("-c, --config <file>", "configuration file", DEFAULT_CONFIG_PATH)
    .action(async (options: { config: string }) => {
      // Before the daemon's modules load: their loading is the first burst the settings are for.
      (await import("../daemon/v8-memory.js")).tuneV8ForDaemon();
      // A configuration the daemon cannot load exits with its own code: restarting cannot fix it.
      const config = await loadAgentConfig(options.config).catch((error: unknown) => {
        if (!(error instanceof V6Error)) throw error;
        process.stderr.write(`v6agent: ${error.message}\n`);
        throw new CliExit(EXIT_CONFIG);
      });
      const { runDaemon } = await import("../daemon/daemon.js");
      const code = await runDaemon(options.config, config);
      if (code !== 0) throw new CliExit(code);
    });

  program
    .command("mgmt")
    .description("run the reference management server (agents over wss, a local HTTP API for labs and tests)")
    .option("--listen <host:port>", "address agents connect to", "127.0.0.1:8443")
    .option("--api <host:port|unix:path>", "HTTP API: TCP (needs --api-token-file) or an owner-only unix socket", "127.0.0.1:8440")
    .option("--api-token-file <file>", "bearer token the HTTP API requires on TCP")
    .option("--cert <file>", "server certificate (PEM); without it, plain ws:// (loopback or --insecure)")
    .option("--key <file>", "server private key (PEM)")
    .option("--client-ca <file>", "mutual TLS: client certificates signed by this CA; a hostId must match its certificate")
    .option("--host-tokens <file>", "per-host tokens: lines `sha256:<hex> <hostId>`; a hostId must match its token")
    .option("--lab-token-file <file>", "lab mode: tokens shared by every agent, one per line (any holder may be any host)")
    .option("--insecure-loopback", "accept agents without credentials (loopback --listen only)")
    .option("--heartbeat-ms <ms>", "heartbeat interval asked of agents")
    .option("--max-connections <n>", "connections held at once", "4096")
    .option("--forget-after <seconds>", "forget a host disconnected for this long", "3600")
    .option("--insecure", "allow plain ws:// on a non-loopback address")
    .option("--allow-remote-api", "allow the HTTP API on a non-loopback address")
    .action(async (options: MgmtCommandOptions) => (await import("../mgmt/cli.js")).runMgmt(options));

  program
    .command("diag")
    .description("check this host: kernel, tools, bridges, rules, hypervisor and management connectivity")
    .option("-c, --config <file>", `agent configuration (default ${DEFAULT_CONFIG_PATH} when it exists)`)
    .option("--json", "print machine-readable JSON")
    .action(async (options: DiagCommandOptions) => (await import("./diag.js")).runDiag(options));

  const lab = program
    .command("lab")
    .description("build a one-machine IPv6 cloud (management server, agent, router, guests) and play the whole sequence, attacks included")
    .option("--guests <n>", "guests; the last one attacks the others (2 to 8)", "2")
    .option("--backend <backend>", "firewall backend of the lab's agent: nft or xtables", "nft")
    .option("--hypervisor <kind>", "kvm (real VMs via libvirt/QEMU; the default when installed) or xenserver (the XAPI simulator)")
    .option("--guest-kind <kind>", "vm (KVM) or netns (implies --hypervisor xenserver: the simulated dom0 plugs namespaces in)")
    .option("--keep", "leave the lab up for exploring ('v6agent lab down' removes it)")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nNetwork-namespace guests need a hypervisor that gives a namespace a port on the guest bridge. The XenServer\nsimulator's dom0 does (a real vif<domid>.0 veth per VIF), libvirt does not: --guest-kind netns therefore\nmeans --hypervisor xenserver, and --hypervisor kvm --guest-kind netns is refused.\nSee docs/lab.md.",
    )
    .action(async (options: LabCommandOptions) => (await import("./lab.js")).runLabCommand(options));
  lab
    .command("down")
    .description("remove every trace of the lab: processes, domains, bridges, veths, namespaces, rules")
    .option("--json", "print what was removed as JSON")
    .action(async (options: { json?: boolean }) => (await import("./lab.js")).runLabDownCommand(options));

  program
    .command("guest-config")
    .description("print the guest-side DHCPv6 (DUID-LL) configuration for an operating system")
    .option("--os <os>", `guest operating system: ${guestOsIds().join(", ")}`)
    .option("--mac <mac>", "the NIC's MAC: adds its DUID-LL and expected link-local as a comment")
    .option("--nic <name>", "the guest's interface name", "eth0")
    .option("--default", "this is the VM's default NIC: it takes the router's default route (the default)")
    .option("--non-default", "not the default NIC: accept_ra 0, so no default route comes in here")
    .option("--json", "print the files and commands as JSON")
    .addHelpText("after", guestOsHelp())
    .action((options: GuestConfigOptions) => {
      const { config, text } = guestConfigCommand(options);
      process.stdout.write(options.json ? `${JSON.stringify(config, null, 2)}\n` : text);
    });

  program
    .command("addr")
    .description("print a MAC's DUID-LL, EUI-64 link-local and (with --prefix) EUI-64 global address")
    .argument("<mac>", "guest MAC, e.g. 52:54:00:12:34:56")
    .option("--prefix <cidr>", "the shared network's /64, e.g. 2001:db8:1:1::/64")
    .option("--json", "print machine-readable JSON")
    .action((mac: string, options: { prefix?: string; json?: boolean }) => {
      const report = addrReport(mac, options.prefix);
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatAddrReport(report)}\n`);
    });

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv as string[], { from: "node" });
    return 0;
  } catch (error) {
    if (error instanceof CliExit) return error.exitCode;
    if (error instanceof CommanderError) {
      // Help and version are "errors" under exitOverride; commander already printed them.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (error instanceof V6Error) {
      process.stderr.write(`v6agent: ${error.message}\n`);
      return error.code === "not_implemented" ? EXIT_NOT_IMPLEMENTED : EXIT_FAILURE;
    }
    process.stderr.write(`v6agent: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT_FAILURE;
  }
}
