/**
 * Header rewriting between client and member: hop-by-hop headers stay on
 * their hop (RFC 9110 §7.6.1), headers a `Connection` header names too,
 * X-Forwarded-* record the client's hop, and framing is written back in one
 * canonical form. Heads are built as one latin1 string, written in one go.
 */

/** Hop-by-hop headers, plus the non-standard proxy-connection; framing headers are handled apart. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "transfer-encoding",
  "upgrade",
]);

/** Field names seen, in lower case: at most this many are remembered (names are the peers' choice). */
const lowerCaseLimit = 512;
const lowerCases = new Map<string, string>();

/**
 * `name.toLowerCase()`, remembered: the same few names come with every message (Host, Content-Length,
 * Connection, User-Agent…), and lower-casing one that has capitals makes a new string each time. A lookup
 * makes none. Once `lowerCaseLimit` names are known, others are lower-cased as they come.
 */
export function lowerCase(name: string): string {
  let lower = lowerCases.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lowerCases.size < lowerCaseLimit) lowerCases.set(name, lower);
  }
  return lower;
}

/** Whether `name` (lower case) is a hop-by-hop header. */
export function isHopByHop(name: string): boolean {
  return hopByHop.has(name);
}

/**
 * Extra header names a Connection header lists, beyond the usual
 * `keep-alive`/`close`/`upgrade` (already hop-by-hop), added to `listed`
 * (the names earlier Connection lines gave: every line counts, RFC 9110
 * §7.6.1); undefined when none, which is nearly always.
 */
export function connectionTokens(value: string, listed?: Set<string>): Set<string> | undefined {
  // Nearly every member says `keep-alive` or `close`: nothing to split.
  if (value.length <= 10 && /^(?:keep-alive|close|upgrade)$/i.test(value)) return listed;
  for (const raw of value.split(",")) {
    const token = raw.trim().toLowerCase();
    if (token === "" || token === "keep-alive" || token === "close" || token === "upgrade") continue;
    // Framing and Host are never dropped on a peer's say-so: a response without its framing would desync the client.
    if (token === "content-length" || token === "transfer-encoding" || token === "host") continue;
    listed ??= new Set();
    listed.add(token);
  }
  return listed;
}

/** What the engine needs from a request head, read in one pass over its headers. */
export interface RequestHead {
  /** Host header values seen (more than one is refused). */
  hosts: number;
  host: string | undefined;
  contentLength: string | undefined;
  /** Transfer-Encoding lines, and the last value. */
  transferEncodings: number;
  transferEncoding: string | undefined;
  expectContinue: boolean;
  /** The client said `TE: trailers`: it reads trailer fields (an h2c member's are passed on only then). */
  teTrailers: boolean;
  upgrade: string | undefined;
  /** The end-to-end headers as `name: value\r\n` lines, framing and X-Forwarded-* not yet added. */
  lines: string;
}

/**
 * Reads a request's headers and builds the lines the member gets: the
 * client's minus hop-by-hop ones (Host kept: the member may serve several
 * virtual hosts; it never picks the upstream), X-Forwarded-* replaced by
 * this hop's when `forwarded` is on (X-Forwarded-For appended to), and
 * every x-ringroute-* header dropped (only the proxy may send those). An
 * HTTP/1.0 client's `Expect: 100-continue` is dropped.
 */
export function readRequestHead(
  names: readonly string[],
  values: readonly string[],
  forwarded: boolean,
  client: string,
  proto: string,
  http10 = false,
): RequestHead {
  const head: RequestHead = {
    hosts: 0,
    host: undefined,
    contentLength: undefined,
    transferEncodings: 0,
    transferEncoding: undefined,
    expectContinue: false,
    teTrailers: false,
    upgrade: undefined,
    lines: "",
  };
  let listed: Set<string> | undefined;
  let xff: string | undefined;
  let lines = "";
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const value = values[i] as string;
    const lower = lowerCase(name);
    switch (lower) {
      case "host":
        head.hosts++;
        head.host = value;
        break;
      case "content-length":
        head.contentLength = value;
        continue;
      case "transfer-encoding":
        head.transferEncodings++;
        head.transferEncoding = value;
        continue;
      case "expect":
        if (value.toLowerCase() === "100-continue") {
          // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1): the member must not wait on it either.
          if (http10) continue;
          head.expectContinue = true;
        }
        break;
      case "upgrade":
        head.upgrade = value;
        continue;
      case "te":
        // Hop-by-hop: never forwarded as is.
        if (/(?:^|,)\s*trailers\s*(?:[,;]|$)/i.test(value)) head.teTrailers = true;
        continue;
      case "connection":
        listed = connectionTokens(value, listed);
        continue;
      case "x-forwarded-for":
        if (forwarded) {
          xff = xff === undefined ? value : `${xff}, ${value}`;
          continue;
        }
        break;
      case "x-forwarded-proto":
      case "x-forwarded-host":
        if (forwarded) continue;
        break;
      default:
        if (hopByHop.has(lower)) continue;
        // x-ringroute-* is what the proxy tells members (partition, rank, version): a client cannot say it.
        if (lower.length > 12 && lower.charCodeAt(0) === 120 && lower.startsWith("x-ringroute-")) continue;
    }
    lines += `${name}: ${value}\r\n`;
  }
  if (listed !== undefined) lines = withoutListed(lines, listed);
  if (forwarded) {
    lines +=
      xff === undefined
        ? forwardedLines(client, proto)
        : `x-forwarded-for: ${xff}, ${client}\r\nx-forwarded-proto: ${proto}\r\n`;
    if (head.host !== undefined) lines += `x-forwarded-host: ${head.host}\r\n`;
  }
  head.lines = lines;
  return head;
}

let lastClient = "";
let lastProto = "";
let lastForwarded = "";

/**
 * `x-forwarded-for` and `x-forwarded-proto` for a client that sent no X-Forwarded-For, kept for the last
 * client and scheme: requests come in runs from the same address (keep-alive), so the lines are usually
 * made once, not once a request.
 */
function forwardedLines(client: string, proto: string): string {
  if (client !== lastClient || proto !== lastProto) {
    lastClient = client;
    lastProto = proto;
    lastForwarded = `x-forwarded-for: ${client}\r\nx-forwarded-proto: ${proto}\r\n`;
  }
  return lastForwarded;
}

/** Rebuilds `lines` without the headers a Connection header listed (rare: a second pass is fine). */
function withoutListed(lines: string, listed: ReadonlySet<string>): string {
  let kept = "";
  for (const line of lines.split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (!listed.has(line.slice(0, colon).toLowerCase())) kept += `${line}\r\n`;
  }
  return kept;
}

/** What the engine needs from a member's response head. */
export interface ResponseHead {
  chunked: boolean;
  /** The member's Content-Length (llhttp checked it is one number), or -1. */
  contentLength: number;
  /** The member's headers for the client: hop-by-hop ones out, framing headers kept as the member sent them. */
  lines: string;
  upgrade: string | undefined;
}

/** Reads a member's response headers and builds the lines the client gets: the fields `readResponseFields` keeps. */
export function readResponseHead(names: readonly string[], values: readonly string[]): ResponseHead {
  const fields = readResponseFields(names, values, false);
  let lines = "";
  for (let j = 0; j < fields.count; j++) {
    const i = fields.kept[j] as number;
    lines += `${names[i]}: ${values[i]}\r\n`;
  }
  return { chunked: fields.chunked, contentLength: fields.contentLength, lines, upgrade: fields.upgrade };
}

/**
 * A member's final response head, read without building its lines: the fields the client gets are listed
 * by index into the parser's names and values, with the bytes they take as `name: value\r\n` lines, so the
 * engine writes the head straight into the buffer the response leaves in (`writeFields`). Building the
 * lines as strings, as `readResponseHead` does for the rare 1xx and 101 heads, cost about four strings a
 * field and a flattening copy. The same fields are dropped as there: hop-by-hop ones, those a Connection
 * field names, and Transfer-Encoding when the body is de-chunked for an HTTP/1.0 client.
 */
export interface ResponseFields {
  chunked: boolean;
  /** The member's Content-Length (llhttp checked it is one number), or -1. */
  contentLength: number;
  upgrade: string | undefined;
  /** Indices of the fields the client gets, in order (the first `count`); refilled by the next call. */
  kept: number[];
  count: number;
  /** Bytes of those fields as lines. */
  bytes: number;
}

/** The one list `readResponseFields` fills: it is read at once (`writeFields`), so one serves every call. */
const keptFields: number[] = [];

/** Reads a member's response fields; `http10`: the client gets a de-chunked body, without Transfer-Encoding. */
export function readResponseFields(
  names: readonly string[],
  values: readonly string[],
  http10: boolean,
): ResponseFields {
  let listed: Set<string> | undefined;
  let chunked = false;
  let contentLength = -1;
  let upgrade: string | undefined;
  let count = 0;
  let bytes = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const value = values[i] as string;
    // Most response headers are not hop-by-hop: test the length before lower-casing.
    const n = name.length;
    if (n === 10 || n === 17 || n === 14 || n === 7 || n === 2 || n === 16 || n === 18 || n === 19) {
      const lower = lowerCase(name);
      if (lower === "connection") {
        listed = connectionTokens(value, listed);
        continue;
      }
      if (lower === "content-length") contentLength = Number(value);
      else if (lower === "transfer-encoding") {
        chunked = true;
        if (http10) continue;
      } else if (lower === "upgrade") {
        upgrade = value;
        continue;
      } else if (hopByHop.has(lower)) continue;
    }
    keptFields[count++] = i;
    bytes += n + value.length + 4;
  }
  if (listed !== undefined) {
    // Rare: a second pass drops what the Connection fields named.
    const all = count;
    count = 0;
    bytes = 0;
    for (let j = 0; j < all; j++) {
      const i = keptFields[j] as number;
      const name = names[i] as string;
      if (listed.has(lowerCase(name))) continue;
      keptFields[count++] = i;
      bytes += name.length + (values[i] as string).length + 4;
    }
  }
  return { chunked, contentLength, upgrade, kept: keptFields, count, bytes };
}

/** Writes `fields` as `name: value\r\n` lines into `out` at `at` (room for `fields.bytes` there); returns the end. */
export function writeFields(
  out: Buffer,
  at: number,
  names: readonly string[],
  values: readonly string[],
  fields: ResponseFields,
): number {
  let p = at;
  for (let j = 0; j < fields.count; j++) {
    const i = fields.kept[j] as number;
    p = putLatin1(out, p, names[i] as string);
    out[p++] = 0x3a; // :
    out[p++] = 0x20;
    p = putLatin1(out, p, values[i] as string);
    out[p++] = 0x0d;
    out[p++] = 0x0a;
  }
  return p;
}

/** Buffer's own latin1 encoder, minus the argument checks of `write(text, at, "latin1")`. */
type Latin1Writing = { latin1Write(text: string, at: number): number };

/**
 * Writes a latin1 string (header text as llhttp gave it: one character a byte) at `at`; returns the end.
 * Short pieces are copied in a loop, which costs less than a call into the native encoder.
 */
export function putLatin1(out: Buffer, at: number, text: string): number {
  const n = text.length;
  if (n > 32) return at + (out as unknown as Latin1Writing).latin1Write(text, at);
  for (let i = 0; i < n; i++) out[at + i] = text.charCodeAt(i);
  return at + n;
}
