/**
 * Differential test with an independent oracle: the same generated
 * exchanges go through ringroute and through HAProxy 2.6 (`balance uri`,
 * consistent hashing, keep-alive both ways), each in front of the same kind
 * of recording member answering by the same plan, and what the members
 * received and what the clients received must agree, after normalising for
 * the documented differences:
 *
 * - Field names compare case-insensitively (HAProxy writes them in lower case).
 * - Hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 *   Transfer-Encoding, Upgrade, and any field a Connection line names) are
 *   not compared: each hop has its own. Fields named by a Connection line are
 *   held to RFC 9110 §7.6.1 by a rule instead (ringroute only, below), since
 *   HAProxy lets those of all but the last line through.
 * - Added fields are not compared: X-Forwarded-*, Forwarded, Via, x-ringroute-*.
 * - Framing may change: Content-Length, chunked and a close-delimited body
 *   compare by their bytes.
 * - A response a proxy made itself (a 504, say) compares by its status only.
 * - Interim (1xx) responses compare for HTTP/1.1 clients; an HTTP/1.0 client
 *   must get none (a rule, ringroute only: HAProxy 2.6 passes them on).
 *
 * Anything else that differs fails the case unless it is a classified
 * difference (`documented`, with its reason) or one of the differences
 * expected until a known finding is fixed (`expectedUntilFixed`). The
 * generators cover what found the engine's bugs: members that answer before
 * the body arrived or send 1xx first, clients that stop reading and members
 * that stop reading, bodies up to 1 MB in many writes, dot-segment paths,
 * repeated Connection lines, pipelines deeper than 100, HTTP/1.0 clients.
 *
 * Rules held without the oracle, on ringroute's side: every message is
 * strict HTTP with one framing header matching its body; no field named by any
 * Connection line crosses the proxy either way; no 1xx reaches an HTTP/1.0
 * client.
 *
 * DIFFERENTIAL_RUNS=n runs n cases instead of CI's 60 (a long run:
 * `DIFFERENTIAL_RUNS=1000 npx ava test/hostile-differential.test.ts`);
 * DIFFERENTIAL_SEED and DIFFERENTIAL_PATH replay a reported failure.
 */
import { setTimeout as sleep } from "node:timers/promises";
import test from "ava";
import { Etcd3 } from "etcd3";
import fc from "fast-check";
import { type HaproxyHarness, startHaproxy } from "./helpers/haproxy.ts";
import {
  type BackendConnection,
  fixed,
  headerValues,
  type Message,
  MessageParser,
  type RawClient,
  type RawHarness,
  RecordingBackend,
  type Script,
  startRawProxy,
} from "./helpers/raw.ts";
import { until, within } from "./helpers/until.ts";

/** The members behind each proxy: two, so routing is part of what is compared. */
const memberNames = ["a", "b"];
/** Both proxies' member deadline (ringroute `timeouts.response`, HAProxy `timeout server`) and ringroute's `timeouts.body`. */
const deadline = 5_000;
/** A pause past the deadlines: only the side that paused is slow. */
const longPause = deadline + 1_500;
/** How long one connection of a case may take before what arrived is taken as its outcome. */
const connectionDeadline = 15_000;

// ---------------------------------------------------------------------------
// Plans: what each client sends and how each member answers

interface Body {
  size: number;
  seed: number;
  /** Writes (or chunks) it is sent in. */
  pieces: number;
}

interface ResponsePlan {
  status: number;
  reason: string;
  fields: [string, string][];
  framing: "length" | "chunked" | "close";
  body: Body;
  /** A 1xx the member sends before the final response. */
  interim: 0 | 100 | 103;
  /** The member answers once the head arrived, before any of the body (and still reads the body after). */
  early: boolean;
  /** Milliseconds the member stops reading before it reads the request body. */
  pauseRead: number;
  /** Two Connection lines, the first naming X-R-Hide, which is sent too. */
  hidden: boolean;
}

interface RequestPlan {
  method: string;
  /** The path as sent, dot-segments and all. */
  path: string;
  query: string | undefined;
  fields: [string, string][];
  /** Two Connection lines, the first naming X-T-Hide, which is sent too. */
  hidden: boolean;
  body: { framing: "none" } | { framing: "length" | "chunked"; data: Body };
  close: boolean;
  response: ResponsePlan;
}

interface ConnectionPlan {
  version: "1.0" | "1.1";
  requests: RequestPlan[];
  /** Milliseconds the client stops reading once the first response bytes arrived. */
  pauseRead: number;
  /** Where the client's bytes are cut into writes, as fractions of their length. */
  cuts: number[];
}

/** Connections run one after the other, sharing the proxies' member connections. */
interface CasePlan {
  connections: ConnectionPlan[];
}

const made = new Map<string, Buffer>();

/** Deterministic bytes for a body (xorshift32), so a large body costs a seed, not a shrink tree; the last few are kept. */
function bytesOf(body: Body): Buffer {
  const key = `${body.size}:${body.seed}`;
  const known = made.get(key);
  if (known !== undefined) return known;
  const out = Buffer.allocUnsafe(body.size);
  let x = body.seed | 1;
  for (let i = 0; i < body.size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  if (made.size >= 16) made.clear();
  made.set(key, out);
  return out;
}

/** `data` cut into `pieces` nearly equal parts (none empty). */
function piecesOf(data: Buffer, pieces: number): Buffer[] {
  const n = Math.max(1, Math.min(pieces, data.length));
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++)
    out.push(data.subarray(Math.floor((i * data.length) / n), Math.floor(((i + 1) * data.length) / n)));
  return out;
}

const token = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const fieldValue = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);
const fields = (prefix: string) =>
  fc.array(
    fc.tuple(
      token.map((n) => `${prefix}${n}`),
      fieldValue,
    ),
    { maxLength: 6 },
  );

/** Mostly small bodies, now and then up to 1 MB in up to 64 pieces (the examples below go to 8 MB). */
const body: fc.Arbitrary<Body> = fc.record({
  size: fc.oneof(
    { arbitrary: fc.nat({ max: 3000 }), weight: 8 },
    { arbitrary: fc.integer({ min: 3001, max: 1 << 20 }), weight: 1 },
  ),
  seed: fc.integer(),
  pieces: fc.integer({ min: 1, max: 64 }),
});

/** Mostly no pause, sometimes a short one, rarely one past the deadlines. */
const pause = fc.oneof(
  { arbitrary: fc.constant(0), weight: 36 },
  { arbitrary: fc.integer({ min: 20, max: 400 }), weight: 9 },
  { arbitrary: fc.constant(longPause), weight: 1 },
);

const responsePlan: fc.Arbitrary<ResponsePlan> = fc.record({
  status: fc.constantFrom(200, 201, 202, 204, 301, 400, 401, 404, 410, 413, 500),
  reason: fc.constantFrom("OK", "Fine", "Whatever Works", "Not Here"),
  fields: fields("x-r-"),
  framing: fc.constantFrom("length", "chunked", "close"),
  body,
  interim: fc.oneof(
    { arbitrary: fc.constant(0 as const), weight: 8 },
    { arbitrary: fc.constantFrom(100 as const, 103 as const), weight: 2 },
  ),
  early: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
  pauseRead: pause,
  hidden: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
});

/** Paths from a small pool per case, so requests share keys and member connections; some with dot-segments. */
function requestPlan(keys: string[]): fc.Arbitrary<RequestPlan> {
  return fc
    .record({
      method: fc.constantFrom("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
      key: fc.constantFrom(...keys),
      dots: fc.oneof(
        { arbitrary: fc.constant(""), weight: 3 },
        { arbitrary: fc.constantFrom("/zz/..", "/.", "/./zz/..", "/zz/yy/../.."), weight: 1 },
      ),
      at: fc.nat(),
      query: fc.option(fc.stringMatching(/^[a-z0-9=&]{0,20}$/), { nil: undefined }),
      fields: fields("x-t-"),
      hidden: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
      framing: fc.constantFrom("none", "length", "chunked"),
      data: body,
      response: responsePlan,
    })
    .map((r) => {
      // The dot-segments go in after one of the key's segments, never last: `/k1/zz/../x`.
      const segments = r.key.split("/").slice(1);
      const after = 1 + (r.at % segments.length);
      const path = `/${segments.slice(0, after).join("/")}${r.dots}/${segments.slice(after).join("/")}`.replace(
        /\/$/,
        "",
      );
      const bodyless = r.method === "GET" || r.method === "HEAD" || r.method === "OPTIONS";
      const framing = bodyless ? "none" : r.framing;
      return {
        method: r.method,
        path: r.dots === "" ? r.key : path,
        query: r.query,
        fields: r.fields,
        hidden: r.hidden,
        body: framing === "none" ? { framing } : { framing, data: r.data },
        close: false,
        response: r.response,
      } satisfies RequestPlan;
    });
}

/** A deep pipeline: more than 100 small GETs on one connection. */
function deepPipeline(keys: string[]): fc.Arbitrary<RequestPlan[]> {
  return fc.integer({ min: 101, max: 130 }).chain((n) =>
    fc
      .array(
        fc.record({ key: fc.constantFrom(...keys), status: fc.constantFrom(200, 404), size: fc.nat({ max: 200 }) }),
        { minLength: n, maxLength: n },
      )
      .map((rs) =>
        rs.map(
          (r, i): RequestPlan => ({
            method: "GET",
            path: r.key,
            query: `n=${i}`,
            fields: [],
            hidden: false,
            body: { framing: "none" },
            close: false,
            response: {
              status: r.status,
              reason: "OK",
              fields: [],
              framing: i % 2 === 0 ? "length" : "chunked",
              body: { size: r.size, seed: i, pieces: 1 },
              interim: 0,
              early: false,
              pauseRead: 0,
              hidden: false,
            },
          }),
        ),
      ),
  );
}

function connectionPlan(keys: string[]): fc.Arbitrary<ConnectionPlan> {
  return fc
    .record({
      version: fc.oneof(
        { arbitrary: fc.constant("1.1" as const), weight: 6 },
        { arbitrary: fc.constant("1.0" as const), weight: 1 },
      ),
      requests: fc.oneof(
        { arbitrary: fc.array(requestPlan(keys), { minLength: 1, maxLength: 4 }), weight: 15 },
        { arbitrary: deepPipeline(keys), weight: 1 },
      ),
      close: fc.boolean(),
      pauseRead: pause,
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
    })
    .map((c) => {
      // HTTP/1.0: one request a connection, no chunked upload.
      let requests = c.version === "1.0" ? c.requests.slice(0, 1) : c.requests;
      requests = requests.map((r, i) => {
        const last = i === requests.length - 1;
        let request = { ...r, close: last && c.close && c.version === "1.1" };
        if (c.version === "1.0" && request.body.framing === "chunked")
          request = { ...request, body: { ...request.body, framing: "length" } };
        // An early answer only where there is a body still to come; the client then stops there (it is last).
        const early = r.response.early && request.body.framing !== "none" && request.body.data.size > 0 && last;
        return { ...request, response: { ...r.response, early } };
      });
      return { version: c.version, requests, pauseRead: c.pauseRead, cuts: c.cuts };
    });
}

const casePlan: fc.Arbitrary<CasePlan> = fc
  .uniqueArray(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 3 })
  .map((names) => names.map((n, i) => `/k${i}/${n}`))
  .chain((keys) => fc.record({ connections: fc.array(connectionPlan(keys), { minLength: 1, maxLength: 3 }) }));

// ---------------------------------------------------------------------------
// Bytes on the wire

function target(r: RequestPlan): string {
  return `${r.path}${r.query === undefined ? "" : `?${r.query}`}`;
}

/** A request's bytes: its head, and where its body starts. */
function requestBytes(r: RequestPlan, id: string, version: string): { bytes: Buffer; bodyAt: number } {
  const lines = [`${r.method} ${target(r)} HTTP/${version}`, "Host: example.test", `X-T-Id: ${id}`];
  for (const [name, value] of r.fields) lines.push(`${name}: ${value}`);
  if (r.hidden) lines.push("Connection: x-t-hide", "X-T-Hide: secret", "Connection: keep-alive");
  if (r.close) lines.push("Connection: close");
  const parts: Buffer[] = [];
  if (r.body.framing === "length") {
    const data = bytesOf(r.body.data);
    lines.push(`Content-Length: ${data.length}`);
    parts.push(data);
  } else if (r.body.framing === "chunked") {
    lines.push("Transfer-Encoding: chunked");
    for (const chunk of piecesOf(bytesOf(r.body.data), r.body.data.pieces)) {
      if (chunk.length > 0) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    }
    parts.push(Buffer.from("0\r\n\r\n"));
  }
  const headBytes = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return { bytes: Buffer.concat([headBytes, ...parts]), bodyAt: headBytes.length };
}

function requestBody(r: RequestPlan): Buffer {
  return r.body.framing === "none" ? Buffer.alloc(0) : bytesOf(r.body.data);
}

/** What the member sends: writes in order, and whether it closes after them. */
function responseWrites(r: ResponsePlan, method: string): { writes: Buffer[]; close: boolean } {
  const lines = [`HTTP/1.1 ${r.status} ${r.reason}`, `Date: ${memberDate}`];
  for (const [name, value] of r.fields) lines.push(`${name}: ${value}`);
  if (r.hidden) lines.push("Connection: x-r-hide", "X-R-Hide: secret", "Connection: keep-alive");
  const interim =
    r.interim === 100
      ? ["HTTP/1.1 100 Continue\r\n\r\n"]
      : r.interim === 103
        ? ["HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"]
        : [];
  const pre = interim.map((s) => Buffer.from(s, "latin1"));
  const noBody = r.status === 204 || method === "HEAD";
  const data = noBody ? Buffer.alloc(0) : bytesOf(r.body);
  const headOf = () => Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  if (r.status === 204) return { writes: [...pre, headOf()], close: false };
  if (r.framing === "length" || (r.framing === "close" && method === "HEAD")) {
    lines.push(`Content-Length: ${r.body.size}`);
    return { writes: [...pre, headOf(), ...piecesOf(data, r.body.pieces)], close: false };
  }
  if (r.framing === "chunked") {
    lines.push("Transfer-Encoding: chunked");
    if (noBody) return { writes: [...pre, headOf()], close: false };
    const chunks = piecesOf(data, r.body.pieces)
      .filter((c) => c.length > 0)
      .map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from("\r\n")]));
    return { writes: [...pre, headOf(), ...chunks, Buffer.from("0\r\n\r\n")], close: false };
  }
  lines.push("Connection: close");
  return { writes: [...pre, headOf(), ...piecesOf(data, r.body.pieces)], close: true };
}

/** Every member answer carries this Date, so a response the proxy made itself is told apart. */
const memberDate = "Tue, 01 Dec 2026 12:00:00 GMT";

function write(c: BackendConnection, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (c.socket.destroyed) resolve();
    else c.socket.write(bytes, () => resolve());
  });
}

/** The member: answers each request by the plan its X-T-Id names, every byte recorded. */
function member(plans: Map<string, RequestPlan>): Script {
  return {
    early: true,
    async answer(request, c) {
      const plan = plans.get(headerValues(request, "x-t-id")[0] ?? "");
      const settled = () => request.complete || c.closed || c.socket.destroyed;
      if (plan === undefined) {
        await until(settled, { what: "an unplanned request to complete", timeout: connectionDeadline }).catch(() => {});
        if (!c.socket.destroyed) c.socket.write(fixed(200, "unplanned"));
        return;
      }
      const r = plan.response;
      if (!r.early) {
        if (r.pauseRead > 0 && !request.complete) {
          c.socket.pause();
          await sleep(r.pauseRead);
          c.socket.resume();
        }
        const done = await until(settled, { what: "the request body", timeout: connectionDeadline }).catch(() => false);
        if (!done || c.socket.destroyed) return;
      }
      const { writes, close } = responseWrites(r, plan.method);
      for (const bytes of writes) await write(c, bytes);
      if (close && !c.socket.destroyed) c.socket.end(() => c.socket.destroy());
    },
  };
}

// ---------------------------------------------------------------------------
// Running a case through one proxy

interface Side {
  name: "ringroute" | "haproxy";
  backends: RecordingBackend[];
  connect(): Promise<RawClient>;
}

interface Reply {
  status: number;
  reason: string;
  version: string;
  rawHeaders: string[];
  body: Buffer;
  complete: boolean;
  /** Statuses of the 1xx responses before it. */
  interim: number[];
}

interface ConnectionSeen {
  replies: Reply[];
  ended: boolean;
  timedOut: boolean;
}

interface Arrival {
  member: string;
  message: Message;
}

interface Seen {
  connections: ConnectionSeen[];
  /** Requests at the members by X-T-Id, in order of arrival (more than one: resent). */
  arrivals: Map<string, Arrival[]>;
  /** Requests at the members that no client sent as such. */
  strays: string[];
  memberErrors: string[];
}

async function runConnection(side: Side, plan: ConnectionPlan, ids: string[]): Promise<ConnectionSeen> {
  const client = await side.connect();
  try {
    // Parsed as it arrives: re-parsing all of an 8 MB response on every read would stall this process, proxy and all.
    const methods = plan.requests.map((r) => r.method);
    const parser = new MessageParser("response", methods);
    let finished = false;
    const finish = () => {
      if (!finished) parser.end();
      finished = true;
    };
    // Checked after each read is parsed (RawClient's own waiters run before this parser has the bytes).
    let wake = () => {};
    client.socket.on("data", (chunk: Buffer) => {
      parser.push(chunk);
      wake();
    });
    client.socket.on("end", () => {
      finish();
      wake();
    });
    client.socket.on("close", () => wake());
    if (plan.pauseRead > 0) {
      client.socket.once("data", () => {
        client.socket.pause();
        setTimeout(() => client.socket.resume(), plan.pauseRead);
      });
    }
    const parts = plan.requests.map((r, i) => requestBytes(r, ids[i] as string, plan.version));
    let wire = Buffer.concat(parts.map((p) => p.bytes));
    const last = plan.requests.at(-1) as RequestPlan;
    if (last.response.early) {
      // The member answers before the body: the client sends the head and a little of the body, then waits.
      const lastPart = parts.at(-1) as { bytes: Buffer; bodyAt: number };
      wire = wire.subarray(
        0,
        wire.length -
          lastPart.bytes.length +
          lastPart.bodyAt +
          Math.min(10, lastPart.bytes.length - lastPart.bodyAt - 1),
      );
    }
    const cuts = [...new Set(plan.cuts.map((f) => Math.floor(f * wire.length)))].sort((a, b) => a - b);
    let from = 0;
    try {
      for (const cut of [...cuts, wire.length]) {
        if (cut > from) await client.send(wire.subarray(from, cut));
        from = cut;
      }
    } catch {
      // The proxy closed while the client was still sending: what it answered is the outcome.
    }
    const finals = () => parser.messages.filter((m) => m.status >= 200 && m.complete);
    let timedOut = false;
    const answered = () => finals().length >= plan.requests.length || client.ended;
    await within(
      new Promise<void>((resolve) => {
        wake = () => {
          if (answered()) resolve();
        };
        wake();
      }),
      { what: `${plan.requests.length} responses through ${side.name}`, timeout: connectionDeadline },
    ).catch(() => (timedOut = true));
    const replies: Reply[] = [];
    let interim: number[] = [];
    if (client.ended) finish();
    for (const m of parser.messages) {
      if (m.status < 200) {
        interim.push(m.status);
        continue;
      }
      replies.push({ ...m, interim });
      interim = [];
    }
    return { replies, ended: client.ended, timedOut };
  } finally {
    client.close();
  }
}

/** The HTTP/2 connection preface (RFC 9113 §3.4), what a gRPC or h2c client sends first. */
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * A member connection neither proxy opened: it starts with the HTTP/2 preface, which neither speaks to a member
 * (ringroute writes only HTTP/1.1; the HAProxy config has no `proto h2`). Another program's client reaches a
 * member when the member's port was, until just before, its server's (on a shared machine, a gRPC client of
 * an etcd a test stopped redials its old port): such a connection is no part of the case.
 */
function foreign(c: BackendConnection): boolean {
  return c.requests.length === 0 && c.bytes.subarray(0, h2Preface.length).equals(h2Preface);
}

async function runCase(side: Side, plan: CasePlan, ids: string[][]): Promise<Seen> {
  const plans = new Map<string, RequestPlan>();
  for (const [i, c] of plan.connections.entries()) {
    for (const [j, r] of c.requests.entries()) plans.set(ids[i]?.[j] as string, r);
  }
  const before = side.backends.map((b) => new Set(b.requests));
  for (const b of side.backends) b.script = member(plans);
  const connections: ConnectionSeen[] = [];
  for (const [i, c] of plan.connections.entries()) connections.push(await runConnection(side, c, ids[i] as string[]));
  const arrivals = new Map<string, Arrival[]>();
  const strays: string[] = [];
  for (const [k, b] of side.backends.entries()) {
    for (const message of b.requests) {
      if (before[k]?.has(message)) continue;
      const id = headerValues(message, "x-t-id")[0] ?? "";
      if (!plans.has(id)) {
        strays.push(`${message.method} ${message.url} (X-T-Id ${id || "none"})`);
        continue;
      }
      arrivals.set(id, [...(arrivals.get(id) ?? []), { member: b.name, message }]);
    }
  }
  // A request cut by a close (an aborted upload) shows as incomplete; anything else the member could not parse is an error,
  // except on a connection neither proxy opened (below).
  const memberErrors = side.backends
    .flatMap((b) => b.connections)
    .filter((c) => !foreign(c))
    .filter((c) => c.parser.error !== undefined && !c.parser.error.startsWith("HPE_INVALID_EOF_STATE"))
    .map((c) => {
      const last = c.requests.at(-1);
      const rest = JSON.stringify(c.parser.rest.subarray(0, 60).toString("latin1"));
      return `${c.parser.error} after ${c.requests.length} requests (last ${last?.method} ${last?.url}, ${last?.body.length} body bytes, ${last?.complete ? "complete" : "incomplete"}), before ${rest}`;
    });
  return { connections, arrivals, strays, memberErrors };
}

// ---------------------------------------------------------------------------
// Comparing

interface Difference {
  /** What differs: `member:…` at the members, `client:…` at the client, `routing`, or `rule:…` (ringroute against the rules above). */
  aspect: string;
  connection?: number;
  request?: number;
  ringroute: string;
  haproxy: string;
}

const notCompared = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
  "via",
  "x-t-hide",
  "x-r-hide",
]);

/** The compared fields of a message: [lower-case name, value] in order. */
function compared(rawHeaders: string[]): [string, string][] {
  const listed = new Set(
    headerValues({ rawHeaders }, "connection").flatMap((v) => v.split(",").map((s) => s.trim().toLowerCase())),
  );
  const out: [string, string][] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (notCompared.has(name) || listed.has(name) || name.startsWith("x-ringroute-")) continue;
    out.push([name, rawHeaders[i + 1] as string]);
  }
  return out;
}

function framingProblem(m: Pick<Message, "rawHeaders" | "body">, bodyAllowed: boolean): string | undefined {
  const lengths = headerValues(m, "content-length");
  const codings = headerValues(m, "transfer-encoding");
  if (lengths.length > 1) return `Content-Length ${lengths.length} times`;
  if (lengths.length === 1 && codings.length > 0) return "both Content-Length and Transfer-Encoding";
  if (codings.length > 1 || (codings.length === 1 && codings[0]?.toLowerCase() !== "chunked")) {
    return `Transfer-Encoding ${codings.join(", ")}`;
  }
  if (bodyAllowed && lengths.length === 1 && Number(lengths[0]) !== m.body.length) {
    return `Content-Length ${lengths[0]} for ${m.body.length} bytes`;
  }
  return undefined;
}

const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? "none";
  return s.length <= 300 ? s : `${s.slice(0, 150)}…(${s.length})…${s.slice(-100)}`;
};
const bodyShow = (b: Buffer) => `${b.length} bytes`;

/** Where two bodies of the same length first differ, with a few bytes of each. */
function firstDifference(a: Buffer, b: Buffer): string {
  if (a.length !== b.length) return "";
  const at = a.findIndex((byte, i) => byte !== b[i]);
  const near = (x: Buffer) => JSON.stringify(x.subarray(Math.max(0, at - 8), at + 24).toString("latin1"));
  return at < 0 ? "" : `, first difference at byte ${at}: ${near(a)} vs ${near(b)}`;
}

/** Where ringroute and HAProxy disagree, and where ringroute breaks a rule. */
function differences(plan: CasePlan, ids: string[][], r: Seen, h: Seen): Difference[] {
  const out: Difference[] = [];
  const add = (d: Difference) => out.push(d);
  for (const [i, c] of plan.connections.entries()) {
    for (const [j, req] of c.requests.entries()) {
      const id = ids[i]?.[j] as string;
      const at = { connection: i, request: j };
      const ra = r.arrivals.get(id) ?? [];
      const ha = h.arrivals.get(id) ?? [];
      if (ra.length !== ha.length) {
        add({ aspect: "member:arrivals", ...at, ringroute: `${ra.length}`, haproxy: `${ha.length}` });
      }
      const rm = ra[0]?.message;
      const hm = ha[0]?.message;
      if (rm !== undefined && hm !== undefined) {
        if (rm.method !== hm.method || rm.url !== hm.url) {
          add({
            aspect: "member:target",
            ...at,
            ringroute: `${rm.method} ${rm.url}`,
            haproxy: `${hm.method} ${hm.url}`,
          });
        }
        if (show(compared(rm.rawHeaders)) !== show(compared(hm.rawHeaders))) {
          add({
            aspect: "member:fields",
            ...at,
            ringroute: show(compared(rm.rawHeaders)),
            haproxy: show(compared(hm.rawHeaders)),
          });
        }
        // After an early answer the client stops mid-body: how much of it a member got is not compared.
        if (!req.response.early && (rm.complete !== hm.complete || !rm.body.equals(hm.body))) {
          add({
            aspect: "member:body",
            ...at,
            ringroute: `${bodyShow(rm.body)}${rm.complete ? "" : ", incomplete"}`,
            haproxy: `${bodyShow(hm.body)}${hm.complete ? "" : ", incomplete"}`,
          });
        }
      }
      // Rules, on ringroute's side.
      for (const a of ra) {
        if (req.hidden && headerValues(a.message, "x-t-hide").length > 0) {
          add({ aspect: "rule:connection-listed", ...at, ringroute: "X-T-Hide reached the member", haproxy: "(rule)" });
        }
        const framing = a.message.complete ? framingProblem(a.message, true) : undefined;
        if (framing !== undefined)
          add({ aspect: "rule:framing", ...at, ringroute: `at the member: ${framing}`, haproxy: "(rule)" });
        if (a.message.complete && !a.message.body.equals(requestBody(req))) {
          add({
            aspect: "rule:request-body",
            ...at,
            ringroute: `${bodyShow(a.message.body)} of ${req.body.framing === "none" ? 0 : req.body.data.size}`,
            haproxy: "(rule)",
          });
        }
      }
    }

    const rc = r.connections[i] as ConnectionSeen;
    const hc = h.connections[i] as ConnectionSeen;
    const where = { connection: i };
    const rf = rc.replies.filter((m) => m.complete);
    const hf = hc.replies.filter((m) => m.complete);
    if (rf.length !== hf.length) {
      add({
        aspect: "client:responses",
        ...where,
        ringroute: `${rf.length} complete of ${c.requests.length}${rc.timedOut ? ", timed out" : ""}; ${show(rc.replies.at(-1)?.status)}`,
        haproxy: `${hf.length} complete of ${c.requests.length}${hc.timedOut ? ", timed out" : ""}; ${show(hc.replies.at(-1)?.status)}`,
      });
    }
    for (let k = 0; k < Math.min(rc.replies.length, hc.replies.length); k++) {
      const a = rc.replies[k] as Reply;
      const b = hc.replies[k] as Reply;
      const at = { connection: i, request: k };
      // An answer each proxy made itself (no member Date: 502, 504, 408…) compares by status: its words are its own.
      const own = headerValues(a, "date")[0] !== memberDate && headerValues(b, "date")[0] !== memberDate;
      if (own) {
        if (a.status !== b.status)
          add({ aspect: "client:status", ...at, ringroute: `${a.status}`, haproxy: `${b.status}` });
        continue;
      }
      if (a.status !== b.status || a.reason !== b.reason) {
        add({
          aspect: "client:status",
          ...at,
          ringroute: `${a.status} ${a.reason}`,
          haproxy: `${b.status} ${b.reason}`,
        });
        continue;
      }
      if (show(compared(a.rawHeaders)) !== show(compared(b.rawHeaders))) {
        add({
          aspect: "client:fields",
          ...at,
          ringroute: show(compared(a.rawHeaders)),
          haproxy: show(compared(b.rawHeaders)),
        });
      }
      if (a.complete !== b.complete || !a.body.equals(b.body)) {
        add({
          aspect: "client:body",
          ...at,
          ringroute: `${bodyShow(a.body)}${a.complete ? "" : ", incomplete"}${firstDifference(a.body, b.body)}`,
          haproxy: `${bodyShow(b.body)}${b.complete ? "" : ", incomplete"}`,
        });
      }
      if (c.version === "1.1" && show(a.interim) !== show(b.interim)) {
        add({ aspect: "client:interim", ...at, ringroute: show(a.interim), haproxy: show(b.interim) });
      }
    }
    for (const [k, a] of rc.replies.entries()) {
      const req = c.requests[k];
      // A member's answer (it carries the member's Date) reaches the client as the member sent it.
      if (req !== undefined && a.complete && headerValues(a, "date")[0] === memberDate) {
        const p = req.response;
        const data = p.status === 204 || req.method === "HEAD" ? Buffer.alloc(0) : bytesOf(p.body);
        if (a.status !== p.status || a.reason !== p.reason || !a.body.equals(data)) {
          add({
            aspect: "rule:response",
            connection: i,
            request: k,
            ringroute: `${a.status} ${a.reason}, ${bodyShow(a.body)} for the member's ${p.status} ${p.reason}, ${bodyShow(data)}`,
            haproxy: "(rule)",
          });
        }
      }
      if (req?.response.hidden && headerValues(a, "x-r-hide").length > 0) {
        add({
          aspect: "rule:connection-listed",
          connection: i,
          request: k,
          ringroute: "X-R-Hide reached the client",
          haproxy: "(rule)",
        });
      }
      if (c.version === "1.0" && a.interim.length > 0) {
        add({
          aspect: "rule:1xx-to-http/1.0",
          connection: i,
          request: k,
          ringroute: `${show(a.interim)} reached an HTTP/1.0 client`,
          haproxy: "(rule)",
        });
      }
      const framing = a.complete ? framingProblem(a, req?.method !== "HEAD") : undefined;
      if (framing !== undefined)
        add({
          aspect: "rule:framing",
          connection: i,
          request: k,
          ringroute: `at the client: ${framing}`,
          haproxy: "(rule)",
        });
    }
  }

  // One target, one member: requests the members got as the same path went to one member.
  const split = (s: Seen) => {
    const where = new Map<string, Set<string>>();
    for (const arrivals of s.arrivals.values()) {
      for (const a of arrivals) {
        const path = a.message.url.split("?")[0] as string;
        where.set(path, (where.get(path) ?? new Set()).add(a.member));
      }
    }
    return [...where].filter(([, m]) => m.size > 1).map(([p]) => p);
  };
  const rs = split(r);
  const hs = split(h);
  if (show(rs) !== show(hs))
    add({
      aspect: "routing",
      ringroute: `reached two members: ${show(rs)}`,
      haproxy: `reached two members: ${show(hs)}`,
    });

  if (show(r.strays) !== show(h.strays))
    add({ aspect: "member:strays", ringroute: show(r.strays), haproxy: show(h.strays) });
  if (r.memberErrors.length > 0)
    add({ aspect: "rule:member-parse", ringroute: show(r.memberErrors), haproxy: "(rule)" });
  return out;
}

// ---------------------------------------------------------------------------
// Classified differences

interface Classified {
  name: string;
  /** Why the two proxies may differ here. */
  reason: string;
  matches(d: Difference, plan: CasePlan): boolean;
}

function upload(size: number, pieces = 1): { framing: "length"; data: Body } {
  return { framing: "length", data: { size, seed: size, pieces } };
}

function response(o: Partial<ResponsePlan> = {}): ResponsePlan {
  const plain = { status: 200, reason: "OK", fields: [], framing: "length", body: { size: 100, seed: 1, pieces: 1 } };
  return { ...plain, interim: 0, early: false, pauseRead: 0, hidden: false, ...o } as ResponsePlan;
}

function request(o: Partial<RequestPlan> = {}): RequestPlan {
  const plain = { method: "GET", path: "/k0/a", query: undefined, fields: [], hidden: false };
  return { ...plain, body: { framing: "none" }, close: false, response: response(), ...o };
}

function connection(requests: RequestPlan[], o: Partial<ConnectionPlan> = {}): ConnectionPlan {
  return { version: "1.1", requests, pauseRead: 0, cuts: [], ...o };
}

/** Index of the first request whose member closes the connection after a close-delimited body, or -1. */
function closeDelimitedAt(c: ConnectionPlan): number {
  return c.requests.findIndex(
    (r) => r.response.framing === "close" && r.response.status !== 204 && r.method !== "HEAD",
  );
}

/** How many complete responses a `client:responses` side reported. */
function count(side: string): number {
  return Number(side.split(" ")[0]);
}

/** Differences that stay: each proxy does what its documentation says. */
const documented: Classified[] = [
  {
    name: "close-delimited response",
    reason:
      "A member's close-delimited response is re-framed chunked for an HTTP/1.1 client and the connection lives on " +
      "(README, Forwarding); HAProxy ends the client connection after it, so requests pipelined behind it get no answer.",
    matches(d, plan) {
      const c = d.connection === undefined ? undefined : plan.connections[d.connection];
      if (c === undefined) return false;
      const at = closeDelimitedAt(c);
      if (at < 0) return false;
      if (d.aspect === "member:arrivals") return (d.request ?? -1) > at && d.haproxy === "0";
      if (d.aspect === "client:responses") return count(d.haproxy) === at + 1 && count(d.ringroute) > at + 1;
      return false;
    },
  },
  {
    name: "unsolicited 100 Continue",
    reason:
      "ringroute passes a member's 100 Continue on only to a client that sent Expect: 100-continue (README, " +
      "Forwarding); HAProxy passes an unsolicited one on too. Other 1xx pass through both.",
    matches(d, plan) {
      const r = plan.connections[d.connection ?? -1]?.requests[d.request ?? -1];
      return (
        d.aspect === "client:interim" && r?.response.interim === 100 && d.ringroute === "[]" && d.haproxy === "[100]"
      );
    },
  },
  {
    name: "HTTP/1.0 DELETE with a body",
    reason:
      "HAProxy 2.6 refuses an HTTP/1.0 DELETE that has a body (413, never forwarded); ringroute forwards it, as " +
      "RFC 9110 §9.3.5 allows.",
    matches(d, plan) {
      const c = plan.connections[d.connection ?? -1];
      const r = c?.requests[0];
      if (c?.version !== "1.0" || r?.method !== "DELETE" || r.body.framing === "none") return false;
      if (d.aspect === "client:status") return d.haproxy === "413 Payload Too Large";
      return d.aspect === "member:arrivals" && d.haproxy === "0";
    },
  },
  {
    name: "HAProxy cuts a response",
    reason:
      "HAProxy ends the client connection after a close-delimited response even while the client is still " +
      "sending pipelined requests; the reset that follows can discard response bytes the client had not read yet " +
      "(its log: CD--). A final response after a 1xx was seen cut the same way, about 1 in 40 tries. ringroute " +
      "keeps such connections and passes the response whole, which rule:response checks against the member's bytes.",
    matches(d, plan) {
      const c = plan.connections[d.connection ?? -1];
      if (c === undefined) return false;
      const r = c.requests[d.request ?? -1];
      if (d.aspect === "client:body" && r !== undefined) {
        const whole = r.response.status === 204 || r.method === "HEAD" ? 0 : r.response.body.size;
        return d.ringroute === `${whole} bytes` && Number(d.haproxy.split(" ")[0]) < whole;
      }
      // Where HAProxy may cut: at any response after a 1xx or ended by a close, not only the first.
      const cuts = c.requests.flatMap((q, i) =>
        q.response.interim !== 0 || q.response.framing === "close" ? [i] : [],
      );
      if (cuts.length === 0) return false;
      if (d.aspect === "client:responses")
        return count(d.haproxy) < count(d.ringroute) && cuts.some((at) => count(d.haproxy) <= at + 1);
      return d.aspect === "member:arrivals" && cuts.some((at) => (d.request ?? -1) > at) && d.haproxy === "0";
    },
  },
  {
    name: "HAProxy mixes the next response into a body after a 1xx",
    reason:
      "HAProxy 2.6.12 can write the head of the next pipelined response into the body of a response that followed " +
      "a 1xx (DIFFERENTIAL_SEED=-878162765 DIFFERENTIAL_PATH=11 shows it: `HTTP/1.1 500` at byte 2136 of a 2804-byte " +
      "body); ringroute passes the body as the member sent it, which rule:response checks. A short body holds " +
      "only the start of that head (DIFFERENTIAL_SEED=1442777291 DIFFERENTIAL_PATH=56: `HTTP/1.` in the last 7 " +
      "of 11 bytes).",
    matches(d, plan) {
      const r = plan.connections[d.connection ?? -1]?.requests[d.request ?? -1];
      if (d.aspect !== "client:body" || r === undefined || r.response.interim === 0) return false;
      if (r.response.status === 204 || r.method === "HEAD") return false;
      const at = Number(/^\d+ bytes, first difference at byte (\d+): /.exec(d.ringroute)?.[1] ?? -1);
      if (at < 0) return false;
      // ringroute's bytes there are the member's (as firstDifference shows them); HAProxy's are the others.
      const whole = r.response.body.size;
      const from = Math.max(0, at - 8);
      const members = JSON.stringify(
        bytesOf(r.response.body)
          .subarray(from, at + 24)
          .toString("latin1"),
      );
      const prefix = `${whole} bytes, first difference at byte ${at}: ${members} vs `;
      if (!d.ringroute.startsWith(prefix)) return false;
      let haproxys: string;
      try {
        haproxys = JSON.parse(d.ringroute.slice(prefix.length)) as string;
      } catch {
        return false;
      }
      const head = "HTTP/1.1 ";
      if (haproxys.includes(head)) return true;
      // The excerpt of HAProxy's body stops where the body does: a head that begins near its end shows only its
      // first bytes ("HTTP/1." from byte 4 of an 11-byte body), from the difference on.
      if (from + haproxys.length !== whole) return false;
      for (let n = Math.min(head.length - 1, haproxys.length); n >= 4; n--)
        if (whole - n <= at && haproxys.endsWith(head.slice(0, n))) return true;
      return false;
    },
  },
  {
    name: "slow member: 504 from ringroute, a close from HAProxy",
    reason:
      "A member that stops reading an upload for longer than the member deadline is timed out by both; ringroute " +
      "answers 504 (the member is blamed, README timeouts), HAProxy closes the client connection without a " +
      "response (its log: sD--).",
    matches(d, plan) {
      const c = plan.connections[d.connection ?? -1];
      const slow = c?.requests.some((r) => r.response.pauseRead >= longPause && r.body.framing !== "none");
      if (slow !== true) return false;
      if (d.aspect === "client:responses")
        return d.ringroute.endsWith("; 504") && count(d.haproxy) < count(d.ringroute);
      return d.aspect === "member:body" && d.ringroute.includes("incomplete") && d.haproxy.includes("incomplete");
    },
  },
];

/** The connection whose client pauses reading past the deadlines, or -1. */
const slowReader = (plan: CasePlan) => plan.connections.findIndex((c) => c.pauseRead >= longPause);

/**
 * Differences expected until the finding named is fixed. Each has an example
 * that shows it; once the fix is on main the example no longer differs, the
 * test "each expected difference still happens" fails, and the entry moves to
 * `fixedFindings`. Empty: every finding of issue 20 this test saw is fixed.
 */
const expectedUntilFixed: (Classified & { example: CasePlan })[] = [];

/**
 * Issue 20's findings as this test first saw them on main, each with the
 * example that showed it; all fixed, so each example must now agree with
 * HAProxy up to the documented differences. A difference that matches one
 * of these is that finding come back.
 */
const fixedFindings: (Classified & { example: CasePlan })[] = [
  {
    name: "early response: smuggling",
    reason:
      "'Request smuggling through an early response': after answering early, the member still expects " +
      "the rest of the body, yet ringroute pools its connection, so the next client's request is read as that body.",
    matches(d, plan) {
      const early = plan.connections.findIndex((c) => {
        const last = c.requests.at(-1)?.response;
        return last?.early === true && last.framing !== "close";
      });
      if (early < 0 || d.aspect === "routing") return false;
      // The smuggled bytes complete the early request's body at the member, and what comes after is off.
      const cut = d.connection === early && d.aspect === "rule:request-body";
      return cut || d.connection === undefined || d.connection > early;
    },
    example: {
      connections: [
        connection([request({ method: "POST", body: upload(300), response: response({ status: 401, early: true }) })]),
        connection([request({ query: "second" })]),
      ],
    },
  },
  {
    name: "slow reader: response cut",
    reason:
      "'A slow-reading client truncates its own response': while the client does not read, ringroute's " +
      "member deadline runs and cuts the response; HAProxy waits for the client.",
    matches(d, plan) {
      return d.connection === slowReader(plan) && d.aspect.startsWith("client:");
    },
    // 8 MB: more than loopback's socket buffers hold, so the proxy has to stop reading the member.
    example: {
      connections: [
        connection([request({ response: response({ body: { size: 8 << 20, seed: 7, pieces: 128 } }) })], {
          pauseRead: longPause,
        }),
      ],
    },
  },
  {
    name: "dot-segments: key and target differ",
    reason:
      "'The key comes from the raw path, the member gets the normalised one': ringroute routes " +
      "`/k0/zz/../a` by that raw path but sends `/k0/a`, so one target reaches two members; HAProxy hashes what it sends.",
    matches(d, plan) {
      return d.aspect === "routing" && plan.connections.some((c) => c.requests.some((r) => r.path.includes("/.")));
    },
    example: {
      connections: [
        connection(
          ["/k0/a", "/k0/zz/../a", "/k0/./a", "/k0/zz/yy/../../a", "/k0/yy/../a", "/k0/x/../a"].map((path) =>
            request({ path }),
          ),
        ),
      ],
    },
  },
  {
    name: "Connection lines: only the last one's fields stripped",
    reason:
      "'Every Connection line's tokens stripped' (item 5): a field named by a Connection line " +
      "other than the last crosses ringroute in both directions (HAProxy 2.6 does the same; the rule holds ringroute to RFC 9110 §7.6.1).",
    matches(d) {
      return d.aspect === "rule:connection-listed";
    },
    example: { connections: [connection([request({ hidden: true, response: response({ hidden: true }) })])] },
  },
  {
    name: "1xx to an HTTP/1.0 client",
    reason:
      "'no 1xx of any kind to an HTTP/1.0 client' (item 5): a member's 103 reaches an HTTP/1.0 " +
      "client (RFC 9110 §15.2 forbids it; HAProxy 2.6 passes it on too).",
    matches(d) {
      return d.aspect === "rule:1xx-to-http/1.0";
    },
    example: { connections: [connection([request({ response: response({ interim: 103 }) })], { version: "1.0" })] },
  },
  {
    name: "slow member: blamed on the client",
    reason:
      "'Slow members blamed on clients': while the member did not read the upload, ringroute's body deadline ran " +
      "against the client (408).",
    matches(d, plan) {
      const c = plan.connections[d.connection ?? -1];
      const slow = c?.requests.some((r) => r.response.pauseRead >= longPause && r.body.framing !== "none");
      return slow === true && d.aspect.startsWith("client:") && d.ringroute.includes("408");
    },
    example: {
      connections: [
        connection([
          request({ method: "POST", body: upload(8 << 20, 128), response: response({ pauseRead: longPause }) }),
        ]),
      ],
    },
  },
];

function classify(d: Difference, plan: CasePlan): Classified | undefined {
  return [...documented, ...expectedUntilFixed].find((c) => c.matches(d, plan));
}

// ---------------------------------------------------------------------------
// The proxies

interface Pair {
  ringroute: Side;
  haproxy: Side;
  /** HAProxy's log so far, one line a request with its termination state. */
  haproxyLog(): string;
  close(): Promise<void>;
}

async function startPair(): Promise<Pair> {
  const rr: RawHarness = await startRawProxy(memberNames, {
    proxy(c) {
      c.timeouts.response = deadline;
      c.timeouts.body = deadline;
      c.timeouts.clientIdle = 20_000;
      c.timeouts.keepAlive = 20_000;
      // Passive ejection would move keys between the members: HAProxy has no health checks here either.
      c.eject.after = 0;
    },
  });
  let hp: HaproxyHarness;
  try {
    hp = await startHaproxy(memberNames, { serverTimeout: deadline, clientTimeout: 20_000 });
  } catch (error) {
    await rr.close();
    throw error;
  }
  return {
    ringroute: { name: "ringroute", backends: rr.backends, connect: () => rr.connect() },
    haproxy: { name: "haproxy", backends: hp.backends, connect: () => hp.connect() },
    haproxyLog: () => hp.output,
    async close() {
      await Promise.all([rr.close(), hp.close()]);
    },
  };
}

let nextId = 0;

/** Runs a case through a fresh pair of proxies (nothing pooled carries over from another case). */
async function compare(plan: CasePlan): Promise<Difference[]> {
  const ids = plan.connections.map((c) => c.requests.map(() => String(++nextId)));
  const pair = await startPair();
  try {
    const [r, h] = await Promise.all([runCase(pair.ringroute, plan, ids), runCase(pair.haproxy, plan, ids)]);
    const found = differences(plan, ids, r, h);
    // DIFFERENTIAL_LOG=1: HAProxy's log of each case that differs (its termination state says who ended what).
    if (process.env.DIFFERENTIAL_LOG !== undefined && found.length > 0) {
      process.stderr.write(`${found.map(show).join("\n")}\n${pair.haproxyLog()}\n`);
    }
    return found;
  } finally {
    await pair.close();
  }
}

function describe(plan: CasePlan): string {
  return JSON.stringify(
    plan.connections.map((c) => ({
      version: c.version,
      pauseRead: c.pauseRead,
      requests: c.requests.length,
      first: c.requests.slice(0, 5).map((r) => ({
        request: `${r.method} ${target(r)} ${r.body.framing === "none" ? "" : `${r.body.framing} ${r.body.data.size}`}`,
        response: `${r.response.status} ${r.response.framing} ${r.response.body.size}${r.response.early ? " early" : ""}${r.response.interim ? ` after ${r.response.interim}` : ""}${r.response.pauseRead ? ` reading after ${r.response.pauseRead} ms` : ""}`,
      })),
    })),
  );
}

/** Runs wanted in CI; a long run sets DIFFERENTIAL_RUNS. */
const runs = Number(process.env.DIFFERENTIAL_RUNS ?? 60);

test.serial("generated exchanges through ringroute and through HAProxy differ only where classified", async (t) => {
  t.timeout(240_000 + runs * 2_000, "each case starts both proxies and may wait out a deadline");
  const tally = new Map<string, number>();
  let done = 0;
  let requests = 0;
  let unclassified = 0;
  await fc.assert(
    fc.asyncProperty(casePlan, async (plan) => {
      const started = Date.now();
      const found = await compare(plan);
      if (process.env.DIFFERENTIAL_LOG !== undefined) {
        process.stderr.write(`case ${done + 1}: ${Date.now() - started} ms: ${describe(plan)}\n`);
      }
      const open: string[] = [];
      for (const d of found) {
        const c = classify(d, plan);
        if (c === undefined) open.push(show(d));
        else tally.set(c.name, (tally.get(c.name) ?? 0) + 1);
      }
      done++;
      requests += plan.connections.reduce((n, c) => n + c.requests.length, 0);
      if (open.length > 0) {
        unclassified++;
        throw new Error(`unclassified differences:\n${open.join("\n")}\ncase: ${describe(plan)}`);
      }
    }),
    {
      numRuns: runs,
      // A failing case is reported as found (shrinking would rerun the proxies hundreds of times); replay with the seed.
      endOnFailure: process.env.DIFFERENTIAL_SHRINK === undefined,
      seed: process.env.DIFFERENTIAL_SEED === undefined ? undefined : Number(process.env.DIFFERENTIAL_SEED),
      path: process.env.DIFFERENTIAL_PATH,
      includeErrorInReport: true,
    },
  );
  t.log(
    `${done} cases of ${runs} run, ${requests} requests; classified differences: ${JSON.stringify(Object.fromEntries(tally))}`,
  );
  // fast-check stops early only by failing; a run that ends with fewer cases than asked for did not pass.
  t.is(done, runs, "every case ran");
  t.is(unclassified, 0);
});

test.serial("each expected difference still happens (delete its entry once its fix is on main)", async (t) => {
  t.timeout(180_000, "each example may wait out a deadline");
  const fixed: string[] = [];
  const unclassified: string[] = [];
  for (const entry of expectedUntilFixed) {
    const found = await compare(entry.example);
    const mine = found.filter((d) => entry.matches(d, entry.example));
    unclassified.push(
      ...found.filter((d) => classify(d, entry.example) === undefined).map((d) => `${entry.name}: ${show(d)}`),
    );
    if (mine.length === 0) fixed.push(entry.name);
    else
      t.log(
        `${entry.name}: ${mine.map((d) => `${d.aspect}: ringroute ${d.ringroute}, HAProxy ${d.haproxy}`).join("; ")}`,
      );
  }
  t.deepEqual(fixed, [], "these no longer differ: their fixes are in, delete their entries from expectedUntilFixed");
  t.deepEqual(unclassified, []);
});

test.serial("the cases that showed issue 20's findings now agree with HAProxy", async (t) => {
  t.timeout(180_000, "each example may wait out a deadline");
  const open: string[] = [];
  for (const entry of fixedFindings) {
    for (const d of await compare(entry.example)) {
      if (classify(d, entry.example) !== undefined) continue;
      open.push(`${entry.name}${entry.matches(d, entry.example) ? " is back" : ""}: ${show(d)}`);
    }
  }
  t.deepEqual(open, []);
});

// ---------------------------------------------------------------------------
// Malformed requests

/**
 * Ways to break a valid request; each yields bytes llhttp in strict mode
 * refuses in the head, before anything could be forwarded. (Bodies that
 * break after a valid head are in test/hostile-smuggling.test.ts.)
 */
const breakages: { what: string; make: (target: string) => string }[] = [
  {
    what: "CL and TE",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  },
  {
    what: "two Content-Lengths",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
  },
  {
    what: "xchunked",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
  },
  {
    what: "chunked not last",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`,
  },
  { what: "space in a field name", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX Bad: 1\r\n\r\n` },
  { what: "space before the colon", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Bad : 1\r\n\r\n` },
  { what: "a field without a colon", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Bad\r\n\r\n` },
  { what: "bare LF", make: (p) => `GET ${p} HTTP/1.1\nHost: x\n\n` },
  { what: "obs-fold", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n` },
  { what: "NUL in a value", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n` },
  { what: "bad method", make: (p) => `G(T ${p} HTTP/1.1\r\nHost: x\r\n\r\n` },
  { what: "bad version", make: (p) => `GET ${p} HTTP/1.x\r\nHost: x\r\n\r\n` },
  {
    what: "a Content-Length that is not a number",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nab`,
  },
  {
    what: "a negative Content-Length",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nab`,
  },
];

test.serial("random malformed requests get a 4xx and reach no backend", async (t) => {
  t.timeout(180_000, "a hundred exchanges on a busy machine");
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  let after = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...breakages),
      fc.array(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
      async (breakage, path, behindGood) => {
        const known = new Set(member.requests);
        const client = await h.connect();
        try {
          const good = behindGood ? "GET /good HTTP/1.1\r\nHost: x\r\n\r\n" : "";
          await client.send(good + breakage.make(`/${path.join("/")}`));
          await client.when(() => client.ended, `the proxy to close after: ${breakage.what}`, 15_000);
          const last = client.responses().messages.at(-1);
          if (last === undefined || last.status < 400 || last.status > 499) {
            throw new Error(`${breakage.what}: got ${JSON.stringify(client.preview)}`);
          }
          // A later request on a new connection arrives; nothing complete of the malformed one ever did.
          const probe = await h.connect();
          await probe.send(`GET /after/${++after} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
          await probe.when(() => probe.ended, "the probe's response", 15_000);
          probe.close();
          const fresh = member.requests.filter((r) => !known.has(r));
          const complete = fresh.filter((r) => r.complete).map((r) => r.url);
          const expected = [...(behindGood ? ["/good"] : []), `/after/${after}`];
          if (JSON.stringify(complete.sort()) !== JSON.stringify(expected.sort())) {
            throw new Error(`${breakage.what}: the member got ${JSON.stringify(complete)}`);
          }
          const partial = fresh.filter((r) => !r.complete).map((r) => r.url);
          if (partial.length > 0) throw new Error(`${breakage.what}: the member got the head of ${partial}`);
        } finally {
          client.close();
        }
      },
    ),
    { numRuns: 100, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false, includeErrorInReport: true },
  );
  t.deepEqual(member.errors, []);
});

test.serial(
  "a connection no proxy opened (a gRPC client redialling a port a member now has) is told apart, not taken for the proxy's",
  async (t) => {
    const member = await RecordingBackend.start("a");
    const grpc = new Etcd3({ hosts: `http://127.0.0.1:${member.port}`, dialTimeout: 2_000 });
    t.teardown(async () => {
      grpc.close();
      await member.close();
    });
    // It never gets an answer; what it sent is all this test needs.
    grpc.get("k").catch(() => {});
    await until(() => member.connections[0]?.parser.error !== undefined, { what: "the gRPC client's first bytes" });
    const c = member.connections[0] as BackendConnection;
    // What a case once reported as a member's parse error, with no request and no proxy involved.
    t.is(c.parser.error, "HPE_PAUSED_H2_UPGRADE: Pause on PRI/Upgrade");
    t.true(foreign(c));
    t.false(foreign({ requests: [], bytes: Buffer.from("PRI * HTTP/1.1\r\n\r\n") } as unknown as BackendConnection));
  },
);
