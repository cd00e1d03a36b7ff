/**
 * HTTP/2 clients for the tests: node:http2 (nghttp2) sessions and curl,
 * real clients both. `sendAs` speaks either protocol with one signature, so
 * a routing test written once runs for HTTP/1.1 and h2 clients.
 */
import { execFile } from "node:child_process";
import {
  type ClientHttp2Session,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from "node:http2";
import type { ClientProtocol } from "../../src/proxy/observer.ts";
import { type Reply, send } from "./backends.ts";
import { within } from "./until.ts";

/** What an h2 stream got back. */
export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience for JSON bodies
  json: any;
  /** Trailing HEADERS, or undefined when none came. */
  trailers: IncomingHttpHeaders | undefined;
  /** The response ended with its HEADERS frame (END_STREAM on it): gRPC's trailers-only form. */
  headersOnly: boolean;
  /** The RST_STREAM code the stream closed with (NGHTTP2_NO_ERROR: a clean end). */
  rstCode: number;
}

/** Opens an h2 session to `base` (http: prior knowledge; https: ALPN) and waits until it is connected. */
export async function session(base: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const client = connect(base, { rejectUnauthorized: false, ...options });
  client.on("error", () => {});
  await within(
    new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    }),
    { what: `an h2 session to ${base}` },
  );
  return client;
}

/** One request on `client`: headers (pseudo-headers from `path` and `method`), an optional body sent in `chunks`. */
export function request(
  client: ClientHttp2Session,
  path: string,
  options: {
    method?: string;
    headers?: OutgoingHttpHeaders;
    /** The body in DATA frames, one per element; absent: END_STREAM on the HEADERS frame. */
    chunks?: (string | Buffer)[];
  } = {},
): Promise<H2Reply> {
  const stream = client.request(
    { ":method": options.method ?? "GET", ":path": path, ...options.headers },
    { endStream: options.chunks === undefined },
  );
  for (const chunk of options.chunks ?? []) stream.write(chunk);
  if (options.chunks !== undefined) stream.end();
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let headersOnly = false;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (h, flags) => {
      headers = h;
      headersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on("trailers", (h) => (trailers = h));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {});
    stream.on("close", () => {
      const status = Number(headers[":status"] ?? 0);
      if (status === 0 && stream.rstCode !== constants.NGHTTP2_NO_ERROR && chunks.length === 0) {
        reject(Object.assign(new Error(`stream reset with code ${stream.rstCode}`), { rstCode: stream.rstCode }));
        return;
      }
      const body = Buffer.concat(chunks);
      const text = body.toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status, headers, body, text, json, trailers, headersOnly, rstCode: stream.rstCode ?? 0 });
    });
  });
}

/** Closes a session and waits until it is gone. */
export async function closeSession(client: ClientHttp2Session): Promise<void> {
  if (client.destroyed) return;
  // Closing already (a GOAWAY from the server closes it): close() would not call back, so wait for the end.
  const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  client.close();
  await within(closed, { what: "the h2 session to close" });
}

/**
 * One request as `send` makes it, in `protocol`: HTTP/1.1 on a connection of its own, or h2 on a session of its
 * own (prior knowledge on http:, ALPN on https:). The reply has the same shape either way.
 */
export async function sendAs(
  protocol: ClientProtocol,
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  if (protocol === "http/1.1") return send(base, path, options);
  const client = await session(base);
  try {
    const reply = await request(client, path, {
      ...(options.method === undefined ? {} : { method: options.method }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      ...(options.body === undefined ? {} : { chunks: [options.body] }),
    });
    const rawHeaders: string[] = [];
    for (const [name, value] of Object.entries(reply.headers)) {
      if (name.startsWith(":")) continue;
      for (const one of Array.isArray(value) ? value : [value]) rawHeaders.push(name, String(one));
    }
    const headers = Object.fromEntries(Object.entries(reply.headers).filter(([name]) => !name.startsWith(":")));
    return { status: reply.status, headers, rawHeaders, text: reply.text, json: reply.json };
  } finally {
    await closeSession(client);
  }
}

/** Runs curl with `args`; resolves with its exit code, stdout and stderr (never rejects on a non-zero exit). */
export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["--silent", "--show-error", "--max-time", "30", ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}
