/**
 * A membership source cannot tell who is in: a members file that cannot be
 * read or parsed, a Serf agent out of reach, a DNS lookup that failed. The
 * source reports it as down; the ring keeps its last good state.
 */
export class SourceError extends Error {
  override name = "SourceError";

  constructor(
    /** The source kind: "file", "serf", "dns", ... */
    readonly source: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
