/**
 * Header rewriting between client and member: hop-by-hop headers stay on
 * their hop (RFC 9110 §7.6.1), X-Forwarded-* record the client's hop.
 */
import type { IncomingMessage } from "node:http";

/** Hop-by-hop headers, plus `expect` (Node answers 100-continue itself) and the non-standard proxy-connection. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
]);

/** Headers this hop sets itself; the client's values are dropped (X-Forwarded-For is appended to instead). */
const forwardedHeaders = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);

/** Header names the `Connection` header lists, which are hop-by-hop too. */
function connectionTokens(value: string): Set<string> {
  return new Set(
    value
      .split(",")
      .map((token) => token.trim().toLowerCase())
      .filter((token) => token !== ""),
  );
}

/** Whether `name` (lower case) is one of the hop-by-hop headers (for the WebSocket path and tests). */
export function isHopByHop(name: string): boolean {
  return hopByHop.has(name);
}

/**
 * The headers to send to the member, pushed onto `out` as a flat
 * [name, value, …] list: the client's minus hop-by-hop ones, Host kept (the
 * member may serve several virtual hosts; it never picks the upstream), plus
 * X-Forwarded-* when `forwarded` is set. One pass over the raw headers, no
 * header object built. Returns whether the request has a body.
 */
export function upstreamRequestHeaders(req: IncomingMessage, forwarded: boolean, out: string[]): boolean {
  const raw = req.rawHeaders;
  let listed: Set<string> | undefined;
  let xff: string | undefined;
  let host: string | undefined;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower === "content-length") hasBody ||= value !== "0";
    else if (lower === "transfer-encoding") hasBody = true;
    else if (lower === "host") host = value;
    if (hopByHop.has(lower)) {
      if (lower === "connection") listed = connectionTokens(value);
      continue;
    }
    if (forwarded && forwardedHeaders.has(lower)) {
      if (lower === "x-forwarded-for") xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (listed !== undefined) {
    // Rare: the client named extra hop-by-hop headers in Connection; drop those too.
    const kept = withoutListed(out, listed);
    out.length = 0;
    out.push(...kept);
  }
  if (forwarded) {
    const client = req.socket.remoteAddress ?? "";
    out.push("x-forwarded-for", xff === undefined ? client : `${xff}, ${client}`);
    out.push("x-forwarded-proto", "encrypted" in req.socket && req.socket.encrypted ? "https" : "http");
    if (host !== undefined) out.push("x-forwarded-host", host);
  }
  return hasBody;
}

/**
 * The member's response headers (undici's raw Buffer pairs) as a flat list
 * for `writeHead`, minus hop-by-hop ones: Node frames the body for the client.
 */
export function clientResponseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString("latin1");
    const lower = name.toLowerCase();
    if (lower === "connection") {
      listed = connectionTokens((raw[i + 1] as Buffer).toString("latin1"));
      continue;
    }
    if (hopByHop.has(lower)) continue;
    out.push(name, (raw[i + 1] as Buffer).toString("latin1"));
  }
  return listed === undefined ? out : withoutListed(out, listed);
}

/** A flat [name, value, …] list without the headers a Connection header listed. */
function withoutListed(headers: readonly string[], listed: ReadonlySet<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!listed.has((headers[i] as string).toLowerCase())) kept.push(headers[i] as string, headers[i + 1] as string);
  }
  return kept;
}
