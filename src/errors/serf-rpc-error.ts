/**
 * The Serf agent answered an RPC request with an error: a wrong or missing
 * auth key, an unsupported command. Connection failures are SourceErrors.
 */
export class SerfRpcError extends Error {
  override name = "SerfRpcError";

  constructor(
    /** The agent's RPC address, "127.0.0.1:7373". */
    readonly address: string,
    /** The RPC command that was refused. */
    readonly command: string,
    /** The agent's own error text. */
    readonly reason: string,
  ) {
    super(`serf agent at ${address}: ${command}: ${reason}`);
  }
}
