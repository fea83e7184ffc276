/** Thrown by a command that finished but must exit with a particular non-zero code (diag's worst status). */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = "CliExit";
  }
}
