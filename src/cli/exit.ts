/**
 * Exit codes of `v6agent`. packaging/v6agent.service's RestartPreventExitStatus names the two a
 * restart cannot cure: a refused host and an invalid configuration.
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Not implemented, or refused by the host (e.g. a XenServer host on Open vSwitch). */
export const EXIT_NOT_IMPLEMENTED = 3;
/** `v6agent run` could not load its configuration (EX_CONFIG of sysexits.h). */
export const EXIT_CONFIG = 78;

/** Thrown by a command that finished but must exit with a particular non-zero code (diag's worst status). */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = "CliExit";
  }
}
