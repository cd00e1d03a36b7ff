/**
 * HTTP/2 ↔ HTTP/1.1 translation, in one place (as HAProxy keeps framing in
 * its muxes): what an h2 stream's request looks like as an HTTP/1.1 head for
 * a member, and what a member's HTTP/1.1 response head and trailers look
 * like as h2 header blocks. Pure functions; the header rules themselves
 * (hop-by-hop, X-Forwarded-*, x-ringroute-*) are src/proxy/headers.ts's,
 * applied to both protocols.
 *
 * | h2 request                         | HTTP/1.1 request to the member               |
 * |------------------------------------|----------------------------------------------|
 * | :method, :path                     | request line (path normalised, member prefix) |
 * | :authority (or host)               | host                                         |
 * | cookie fields (split in h2)        | one cookie line, joined with "; " (RFC 9113 §8.2.3) |
 * | content-length                     | content-length                               |
 * | no content-length, body follows    | transfer-encoding: chunked                   |
 * | END_STREAM on HEADERS              | no framing header (no body)                  |
 *
 * | HTTP/1.1 response                  | h2 response                                  |
 * |------------------------------------|----------------------------------------------|
 * | status line                        | :status (the reason phrase is dropped)       |
 * | connection-specific headers        | dropped (RFC 9113 §8.2.2)                    |
 * | transfer-encoding: chunked         | dropped; body decoded into DATA frames       |
 * | chunked trailers                   | trailing HEADERS frame                       |
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { readResponseFields } from "../headers.ts";
import type { HeaderList, MemberRequest } from "./transport.ts";

/** What the proxy reads from an h2 request's header block. */
export interface StreamRequest {
  method: string;
  /** :path as sent ("" when absent). */
  path: string;
  /** :authority, else host; "" for neither. */
  authority: string;
  /**
   * The regular fields (names lower case), cookies joined into one, and `host` from :authority when the client
   * sent none: what the key is read from and the header rules rewrite, as an HTTP/1.1 request's would be.
   */
  names: string[];
  values: string[];
  contentLength: string | undefined;
  contentType: string | undefined;
  /** `te: trailers` was sent. */
  teTrailers: boolean;
  grpcTimeout: string | undefined;
}

/**
 * Reads a stream's header block from Node's raw list (`[name, value, …]`, names lower case, in the order
 * sent). nghttp2 already refused what HTTP/2 forbids (connection-specific fields, upper-case names, a `te`
 * other than `trailers`, a pseudo-header after a regular one, a content-length its DATA disagrees with).
 */
export function readStreamRequest(raw: readonly string[]): StreamRequest {
  const request: StreamRequest = {
    method: "",
    path: "",
    authority: "",
    names: [],
    values: [],
    contentLength: undefined,
    contentType: undefined,
    teTrailers: false,
    grpcTimeout: undefined,
  };
  let cookie: string | undefined;
  let host: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ":method") request.method = value;
      else if (name === ":path") request.path = value;
      else if (name === ":authority") request.authority = value;
      continue;
    }
    switch (name) {
      case "cookie":
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        continue;
      case "host":
        host ??= value;
        break;
      case "content-length":
        request.contentLength = value;
        break;
      case "content-type":
        request.contentType ??= value;
        break;
      case "te":
        request.teTrailers = true;
        break;
      case "grpc-timeout":
        request.grpcTimeout ??= value;
        break;
    }
    request.names.push(name);
    request.values.push(value);
  }
  if (cookie !== undefined) {
    request.names.push("cookie");
    request.values.push(cookie);
  }
  if (request.authority === "") request.authority = host ?? "";
  else if (host === undefined) {
    // HTTP/1.1 members and key.from: header:host see the authority as Host.
    request.names.push("host");
    request.values.push(request.authority);
  }
  return request;
}

/** `name: value\r\n` lines (as headers.ts builds them) as a list, without `host` (a request's authority). */
export function headerList(lines: string): HeaderList {
  const list: HeaderList = { names: [], values: [] };
  let start = 0;
  while (start < lines.length) {
    const end = lines.indexOf("\r\n", start);
    const colon = lines.indexOf(":", start);
    const name = lines.slice(start, colon).toLowerCase();
    if (name !== "host") {
      list.names.push(name);
      list.values.push(lines.slice(colon + 2, end));
    }
    start = end + 2;
  }
  return list;
}

/** The HTTP/1.1 head an h2 request becomes for a member, `target` being its path with the member's prefix. */
export function memberHead(request: MemberRequest, target: string): string {
  let head = `${request.method} ${target} HTTP/1.1\r\nhost: ${request.authority}\r\n`;
  const { names, values } = request.headers;
  for (let i = 0; i < names.length; i++) head += `${names[i]}: ${values[i]}\r\n`;
  if (request.contentLength !== undefined) head += `content-length: ${request.contentLength}\r\n`;
  else if (request.hasBody) head += "transfer-encoding: chunked\r\n";
  return `${head}\r\n`;
}

/** Whether the member gets the body chunked (an h2 client sent no content-length). */
export function chunkedBody(request: MemberRequest): boolean {
  return request.hasBody && request.contentLength === undefined;
}

/** A request body chunk in HTTP/1.1 chunked framing (never empty: an empty chunk ends the body). */
export function bodyChunk(chunk: Buffer): Buffer[] {
  return [Buffer.from(`${chunk.length.toString(16)}\r\n`, "latin1"), chunk, crlf];
}

const crlf = Buffer.from("\r\n", "latin1");

/** The end of a chunked request body. */
export const lastChunk = "0\r\n\r\n";

/** An h2 client's trailing HEADERS, for a member: repeated fields one entry each, what may not trail dropped. */
export function requestTrailers(headers: IncomingHttpHeaders): HeaderList {
  const names: string[] = [];
  const values: string[] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58) continue; // ':'
    for (const v of Array.isArray(value) ? value : [value]) {
      names.push(name);
      values.push(String(v));
    }
  }
  return trailerList(names, values, 0);
}

/** The last chunk with the client's trailer fields, if it sent any (RFC 9112 §7.1.2). */
export function lastChunkWith(trailers: HeaderList | undefined): string {
  if (trailers === undefined || trailers.names.length === 0) return lastChunk;
  let out = "0\r\n";
  for (let i = 0; i < trailers.names.length; i++) out += `${trailers.names[i]}: ${trailers.values[i]}\r\n`;
  return `${out}\r\n`;
}

/** Fields an HTTP/2 message may not carry (RFC 9113 §8.2.2), beyond what headers.ts drops as hop-by-hop. */
const notInH2 = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host"]);

/** A member's HTTP/1.1 response head, for an h2 client: the end-to-end fields, framing decoded. */
export function responseHeaderList(names: readonly string[], values: readonly string[]): HeaderList {
  // The fields an HTTP/1.1 client would get (headers.ts decides), read by index: no lines built and parsed again.
  const fields = readResponseFields(names, values, false);
  const list: HeaderList = { names: [], values: [] };
  for (let j = 0; j < fields.count; j++) {
    const i = fields.kept[j] as number;
    const name = (names[i] as string).toLowerCase();
    if (notInH2.has(name)) continue;
    list.names.push(name);
    list.values.push(values[i] as string);
  }
  return list;
}

/** A member's chunked trailers (llhttp's fields after the head's `from` ones), without what may not trail. */
export function trailerList(names: readonly string[], values: readonly string[], from: number): HeaderList {
  const list: HeaderList = { names: [], values: [] };
  for (let i = from; i < names.length; i++) {
    const name = (names[i] as string).toLowerCase();
    // Framing, routing and hop-by-hop fields mean nothing in a trailer (RFC 9110 §6.5.1).
    if (notInH2.has(name) || name === "content-length" || name === "trailer") continue;
    list.names.push(name);
    list.values.push(values[i] as string);
  }
  return list;
}

/** A header list as Node's h2 header object: repeated fields as arrays, connection-specific ones out. */
export function h2Headers(list: HeaderList, into: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const { names, values } = list;
  for (let i = 0; i < names.length; i++) {
    const name = (names[i] as string).toLowerCase();
    if (notInH2.has(name) || name.charCodeAt(0) === 58) continue;
    const value = values[i] as string;
    const had = into[name];
    if (had === undefined) into[name] = value;
    else if (Array.isArray(had)) had.push(value);
    else into[name] = [String(had), value];
  }
  return into;
}

/** Node's h2 header object (a member's h2c response, trailers) as a list, pseudo-headers out. */
export function listOfHeaders(headers: IncomingHttpHeaders): HeaderList {
  const list: HeaderList = { names: [], values: [] };
  for (const [name, value] of Object.entries(headers)) {
    if (name.charCodeAt(0) === 58 || value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) {
      list.names.push(name);
      list.values.push(String(one));
    }
  }
  return list;
}
