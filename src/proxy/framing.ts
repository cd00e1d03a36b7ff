/**
 * Response framing, in one place (as HAProxy keeps it in mux_h1): how a
 * member's response body is delimited on the way to the client. A pure
 * decision from what the member sent and what the client speaks, and the
 * few bytes each mode adds. The engine writes; nothing here does I/O, and
 * nothing runs inside llhttp's callbacks (decoded body spans are collected
 * by the parser and handed over after `execute()` returns).
 *
 * | member sends          | HTTP/1.1 client          | HTTP/1.0 client          |
 * |-----------------------|--------------------------|--------------------------|
 * | Content-Length        | as is                    | as is, then close        |
 * | chunked               | as is (framing included) | decoded, then close      |
 * | close-delimited       | re-framed chunked        | as is, then close        |
 * | Upgrade not granted   | as is, then close        | (as above)               |
 */

/** How the body's bytes go to the client. */
export type BodyMode =
  /** The bytes as received, framing included. */
  | "verbatim"
  /** Close-delimited from the member: each span sent as a chunk, a last chunk at the end. */
  | "rechunk"
  /** Chunked from the member: the decoded bytes, delimited by closing the client connection. */
  | "dechunk";

export interface FramingInput {
  /** The member's body ends when it closes the connection (no Content-Length, not chunked). */
  needsEof: boolean;
  /** The member's response is chunked. */
  chunked: boolean;
  /** The client spoke HTTP/1.0. */
  http10: boolean;
  /** The request asked for an Upgrade the member did not grant. */
  upgrade: boolean;
}

export interface Framing {
  body: BodyMode;
  /** The client connection must close after this response (its end delimits the body, or the client cannot go on). */
  close: boolean;
}

/** The framing of a final (non-1xx) response. */
export function responseFraming(input: FramingInput): Framing {
  // An HTTP/1.0 client cannot read chunked framing, whatever else holds.
  if (input.http10) return { body: input.chunked ? "dechunk" : "verbatim", close: true };
  if (input.upgrade) return { body: "verbatim", close: true };
  if (input.needsEof) return { body: "rechunk", close: false };
  return { body: "verbatim", close: false };
}

/** The header lines to add or drop for `mode`, given the member's lines (`name: value\r\n` each). */
export function framedLines(mode: BodyMode, lines: string): string {
  if (mode === "rechunk") return `${lines}transfer-encoding: chunked\r\n`;
  if (mode === "dechunk") return lines.replace(/^transfer-encoding:[^\r]*\r\n/gim, "");
  return lines;
}

/** What goes before a chunk of `length` bytes (never 0: an empty chunk would end the body). */
export function chunkPrefix(length: number): string {
  return `${length.toString(16)}\r\n`;
}

/** What follows each chunk's bytes. */
export const chunkSuffix = "\r\n";

/** The end of a chunked body: the last chunk, no trailers. */
export const lastChunk = "0\r\n\r\n";
