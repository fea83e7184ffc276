/**
 * An XAPI API error: a code from XAPI's error catalogue (`HANDLE_INVALID`, `SESSION_INVALID`,
 * ...) and its string parameters. On the wire it becomes a JSON-RPC v2 error object
 * `{code: 1, message: <code>, data: [params]}`, a JSON-RPC v1 `error: [code, ...params]`, or a
 * task's `error_info` (XAPI's wire-protocol.md).
 */
export class XapiFailure extends Error {
  readonly code: string;
  readonly params: string[];

  constructor(code: string, ...params: (string | number)[]) {
    super(`${code}(${params.join(", ")})`);
    this.name = "XapiFailure";
    this.code = code;
    this.params = params.map(String);
  }

  get description(): string[] {
    return [this.code, ...this.params];
  }
}
