/**
 * The h2c member transport against real node:http2 members on loopback: what a
 * member receives, how many sessions and streams a member gets, how each way a
 * call can fail is told apart (what the member can have seen), flow control
 * both ways, and the timing rules (queue, response, keep-alive) on a manual
 * clock.
 */
import { once } from "node:events";
import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import test from "ava";
import fc from "fast-check";
import { defaultConfig } from "../src/config.ts";
import type { Member } from "../src/membership/source.ts";
import { Deadlines } from "../src/proxy/deadlines.ts";
import { grpcTimeout, type H2cSettings, H2cTransport, h2cSettings } from "../src/proxy/h2/member-pool.ts";
import type { HeaderList, MemberFailure, MemberRequest, MemberSink } from "../src/proxy/h2/transport.ts";
import type { ProxyCluster } from "../src/proxy/upstream.ts";
import { silentLogger } from "../src/utils/logger.ts";
import { ManualClock } from "./helpers/clock.ts";
import { until } from "./helpers/until.ts";

interface Member2 {
  server: Http2Server;
  url: string;
  /** Streams received, in order, with their headers. */
  streams: { stream: ServerHttp2Stream; headers: IncomingHttpHeaders }[];
  /** Sessions accepted. */
  sessions: Http2Session[];
  /** Most streams open at once on one session. */
  maxOpen: number;
  /** The TCP connections under the sessions (to kill one as a crash would). */
  sockets: Socket[];
  close(): Promise<void>;
}

/** An h2c member; `onStream` answers (or not) each stream. */
async function member(
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, m: Member2) => void,
  settings: { maxConcurrentStreams?: number } = {},
): Promise<Member2> {
  const server = createServer({ settings });
  const m: Member2 = {
    server,
    url: "",
    streams: [],
    sessions: [],
    maxOpen: 0,
    sockets: [],
    close: async () => {
      for (const s of m.sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const open = new Map<Http2Session, number>();
  server.on("connection", (socket: Socket) => m.sockets.push(socket));
  server.on("session", (session) => {
    m.sessions.push(session);
    open.set(session, 0);
    session.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    const session = stream.session as Http2Session;
    const n = (open.get(session) ?? 0) + 1;
    open.set(session, n);
    m.maxOpen = Math.max(m.maxOpen, n);
    stream.on("close", () => open.set(session, (open.get(session) ?? 1) - 1));
    stream.on("error", () => {});
    m.streams.push({ stream, headers });
    onStream(stream, headers, m);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  m.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return m;
}

const answer = (stream: ServerHttp2Stream) => {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "x-got": String(Buffer.concat(chunks).length) }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "fine" }));
    stream.end("hello");
  });
};

class Recorder implements MemberSink {
  events: string[] = [];
  status = 0;
  headerList: HeaderList | undefined;
  trailerList: HeaderList | undefined;
  body: Buffer[] = [];
  failure: MemberFailure | undefined;
  drains = 0;
  over = false;
  ready(): void {
    this.events.push("ready");
  }
  headers(status: number, headers: HeaderList, last: boolean): void {
    this.events.push(last ? "headers(last)" : "headers");
    this.status = status;
    this.headerList = headers;
  }
  data(chunk: Buffer): void {
    this.body.push(chunk);
  }
  trailers(trailers: HeaderList): void {
    this.events.push("trailers");
    this.trailerList = trailers;
  }
  end(): void {
    this.events.push("end");
    this.over = true;
  }
  failed(failure: MemberFailure): void {
    this.events.push(`failed:${failure.kind}`);
    this.failure = failure;
    this.over = true;
  }
  drained(): void {
    this.drains++;
  }
  queueTimeout(): void {
    this.events.push("queueTimeout");
    this.over = true;
  }
  get text(): string {
    return Buffer.concat(this.body).toString();
  }
}

function request(over: Partial<MemberRequest> = {}): MemberRequest {
  return {
    method: "POST",
    path: "/kv.Store/Get",
    authority: "proxy.example",
    scheme: "http",
    headers: { names: ["content-type", "x-tenant"], values: ["application/grpc", "t1"] },
    teTrailers: true,
    hasBody: false,
    contentLength: undefined,
    deadline: 0,
    ...over,
  };
}

function cluster(members: Record<string, string>): ProxyCluster & { members: Record<string, string> } {
  return {
    members,
    routing: undefined as never,
    member(name: string): Member | undefined {
      const url = members[name];
      return url === undefined ? undefined : { name, url, protocol: "h2c", tags: {}, state: "alive" };
    },
    listen: () => () => {},
  };
}

function transport(
  members: Record<string, string>,
  over: Partial<H2cSettings> = {},
  clock: ManualClock | undefined = undefined,
) {
  const config = defaultConfig().proxy;
  const settings = { ...h2cSettings(config), ...over };
  const deadlines = new Deadlines(
    clock ?? { now: () => Date.now(), setTimer: (fn, ms) => clearer(setTimeout(fn, ms)) },
    100,
  );
  const t = new H2cTransport({ cluster: cluster(members), config, deadlines, logger: silentLogger }, settings);
  return { t, deadlines };
}

function clearer(timer: NodeJS.Timeout): () => void {
  timer.unref();
  return () => clearTimeout(timer);
}

const what = (w: string) => ({ what: w, timeout: 20_000 });

test("a call reaches the member with its method, path (after the member URL's path), authority, headers and body; headers, body and trailers come back", async (t) => {
  const m = await member((stream) => answer(stream));
  const { t: h2 } = transport({ a: `${m.url}/base/` });
  const sink = new Recorder();
  const call = h2.open("a", request({ hasBody: true, contentLength: 5 }), sink);
  t.true(call.write(Buffer.from("abcde")));
  call.end();
  await until(() => sink.over, what("the response to end"));
  t.deepEqual(sink.events, ["ready", "headers", "trailers", "end"]);
  t.is(sink.status, 200);
  t.is(sink.text, "hello");
  t.deepEqual(
    sink.headerList?.names.includes("x-got") && sink.headerList.values[sink.headerList.names.indexOf("x-got")],
    "5",
  );
  t.deepEqual(sink.trailerList, { names: ["grpc-status", "grpc-message"], values: ["0", "fine"] });
  const got = m.streams[0]?.headers as IncomingHttpHeaders;
  t.is(got[":method"], "POST");
  t.is(got[":path"], "/base/kv.Store/Get");
  t.is(got[":authority"], "proxy.example");
  t.is(got[":scheme"], "http");
  t.is(got.te, "trailers");
  t.is(got["x-tenant"], "t1");
  t.is(got["content-length"], "5");
  h2.destroy();
  await m.close();
});

test("a trailers-only response (a gRPC error) is one head with nothing after it", async (t) => {
  const m = await member((stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "5" }, { endStream: true });
  });
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the response"));
  t.deepEqual(sink.events, ["ready", "headers(last)", "end"]);
  t.is(sink.headerList?.values[sink.headerList.names.indexOf("grpc-status")], "5");
  h2.destroy();
  await m.close();
});

test("calls share a session up to the member's SETTINGS_MAX_CONCURRENT_STREAMS, then new sessions up to the cap, then they wait", async (t) => {
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => held.push(stream), { maxConcurrentStreams: 2 });
  const { t: h2 } = transport({ a: m.url }, { sessions: 2, streams: 100 });
  // One call first, so the member's SETTINGS are known before the rest arrive.
  const first = new Recorder();
  h2.open("a", request(), first).end();
  await until(() => held.length === 1, what("the first stream at the member"));
  const sinks = Array.from({ length: 5 }, () => new Recorder());
  for (const sink of sinks) h2.open("a", request(), sink).end();
  await until(() => held.length === 4, what("4 streams at the member (2 sessions × 2)"));
  t.deepEqual(h2.stats("a"), { sessions: 2, draining: 0, streams: 4, waiting: 2 });
  t.is(m.sessions.length, 2);
  t.is(m.maxOpen, 2, "never more streams on a session than the member allows");
  // Answering one frees a stream for a waiting call.
  const done = held.shift() as ServerHttp2Stream;
  done.respond({ ":status": 200 });
  done.end();
  await until(() => held.length === 4, what("a waiting call to take the freed stream"));
  t.is(h2.stats("a")?.waiting, 1);
  t.is(m.sessions.length, 2, "no third session");
  h2.destroy();
  await m.close();
});

test("a call waits at most timeouts.queue for a stream, then is a queue timeout (manual clock)", async (t) => {
  const clock = new ManualClock();
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => held.push(stream), { maxConcurrentStreams: 1 });
  const { t: h2 } = transport({ a: m.url }, { sessions: 1, streams: 1, queue: 1_000, response: 60_000 }, clock);
  const busy = new Recorder();
  h2.open("a", request(), busy).end();
  await until(() => held.length === 1, what("the first stream at the member"));
  const waiting = new Recorder();
  h2.open("a", request(), waiting).end();
  clock.advance(900);
  t.deepEqual(waiting.events, [], "still waiting before timeouts.queue");
  clock.advance(200);
  t.deepEqual(waiting.events, ["queueTimeout"]);
  t.deepEqual(busy.events, ["ready"], "the call holding the stream is untouched");
  t.is(h2.stats("a")?.waiting, 0);
  h2.destroy();
  await m.close();
});

test("more calls than the queue holds are a queue timeout at once", async (t) => {
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => held.push(stream), { maxConcurrentStreams: 1 });
  const { t: h2 } = transport({ a: m.url }, { sessions: 1, streams: 1, queueLength: 2 });
  const sinks = Array.from({ length: 4 }, () => new Recorder());
  for (const sink of sinks) h2.open("a", request(), sink).end();
  // The first two wait (the session is still connecting), the others find the queue full.
  await until(() => sinks[2]?.over && sinks[3]?.over, what("the calls over the queue's length to be refused"));
  t.deepEqual(sinks[2]?.events, ["queueTimeout"]);
  t.deepEqual(sinks[3]?.events, ["queueTimeout"]);
  await until(() => held.length === 1, what("one stream at the member"));
  t.is(h2.stats("a")?.waiting, 1);
  t.deepEqual(sinks[1]?.events, [], "the second still waits for the stream");
  h2.destroy();
  await m.close();
});

test("a member that is not listening: connect, for every waiting call", async (t) => {
  const m = await member(() => {});
  const url = m.url;
  await m.close();
  const { t: h2 } = transport({ a: url });
  const sinks = [new Recorder(), new Recorder()];
  for (const sink of sinks) h2.open("a", request(), sink).end();
  await until(() => sinks.every((s) => s.over), what("both calls to fail"));
  for (const sink of sinks) t.deepEqual(sink.events, ["failed:connect"]);
  h2.destroy();
});

test("a member that left the cluster: connect", async (t) => {
  const { t: h2 } = transport({});
  const sink = new Recorder();
  h2.open("gone", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.deepEqual(sink.events, ["failed:connect"]);
});

test("REFUSED_STREAM is refused (the member saw nothing)", async (t) => {
  const m = await member((stream) => stream.close(constants.NGHTTP2_REFUSED_STREAM));
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.deepEqual(sink.events, ["ready", "failed:refused"]);
  t.is(sink.failure?.http2Code, constants.NGHTTP2_REFUSED_STREAM);
  t.false(sink.failure?.responseBytes);
  h2.destroy();
  await m.close();
});

test("GOAWAY with last-stream-id 0: the stream was never processed (refused), and the next call opens a new session", async (t) => {
  // node:http2 sends last-stream-id 0 only before it processed a stream: so at the start of the first session.
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    stream.end("second");
  });
  m.server.once("session", (session) => session.goaway(constants.NGHTTP2_NO_ERROR, 0));
  const { t: h2 } = transport({ a: m.url });
  const first = new Recorder();
  h2.open("a", request(), first).end();
  await until(() => first.over, what("the first call to fail"));
  t.deepEqual(first.events, ["ready", "failed:refused"]);
  t.is(m.streams.length, 0, "the member processed nothing");
  const second = new Recorder();
  h2.open("a", request(), second).end();
  await until(() => second.over, what("the second call"));
  t.deepEqual(second.events, ["ready", "headers", "end"]);
  t.is(second.text, "second");
  t.is(m.sessions.length, 2, "the second call went over a new session");
  h2.destroy();
  await m.close();
});

test("GOAWAY with an error code: streams up to its last id were processed (reset), those above it were not (refused)", async (t) => {
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => {
    held.push(stream);
    if (held.length === 2) stream.session?.goaway(constants.NGHTTP2_INTERNAL_ERROR, held[0]?.id ?? 0);
  });
  const { t: h2 } = transport({ a: m.url });
  const a = new Recorder();
  const b = new Recorder();
  h2.open("a", request(), a).end();
  await until(() => held.length === 1, what("the first stream at the member"));
  h2.open("a", request(), b).end();
  await until(() => a.over && b.over, what("both calls to end"));
  t.deepEqual(a.events, ["ready", "failed:reset"]);
  t.deepEqual(b.events, ["ready", "failed:refused"]);
  h2.destroy();
  await m.close();
});

test("a reset after the response head: reset, with responseBytes", async (t) => {
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    // destroy() resets the stream (INTERNAL_ERROR); close(code) after the request ended would end it cleanly.
    stream.write("part", () => stream.destroy(new Error("member failed")));
  });
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.deepEqual(sink.events, ["ready", "headers", "failed:reset"]);
  t.true(sink.failure?.responseBytes);
  t.is(sink.text, "part");
  h2.destroy();
  await m.close();
});

test("a member killed mid-stream: reset for the call in flight, connect for the next", async (t) => {
  const m: Member2 = await member((stream, _headers, self) => {
    stream.respond({ ":status": 200 });
    stream.write("first message", () => {
      for (const socket of self.sockets) socket.destroy();
    });
  });
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.deepEqual(sink.events, ["ready", "headers", "failed:reset"]);
  await m.close();
  const next = new Recorder();
  h2.open("a", request(), next).end();
  await until(() => next.over, what("the next call to fail"));
  t.deepEqual(next.events, ["failed:connect"]);
  h2.destroy();
});

test("a response head over proxy.limits.headers: bad_response", async (t) => {
  const m = await member((stream) => {
    const headers: Record<string, string | number> = { ":status": 200 };
    for (let i = 0; i < 50; i++) headers[`x-h${i}`] = "v";
    stream.respond(headers);
    stream.end();
  });
  const { t: h2 } = transport({ a: m.url }, { headers: 10 });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.is(sink.failure?.kind, "bad_response", sink.failure?.error.message);
  h2.destroy();
  await m.close();
});

test("a member that does not answer within timeouts.response: timeout, and its stream is cancelled (manual clock)", async (t) => {
  const clock = new ManualClock();
  const m = await member(() => {});
  const { t: h2 } = transport({ a: m.url }, { response: 5_000 }, clock);
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => m.streams.length === 1, what("the stream at the member"));
  clock.advance(4_900);
  t.deepEqual(sink.events, ["ready"]);
  clock.advance(200);
  t.deepEqual(sink.events, ["ready", "failed:timeout"]);
  const stream = m.streams[0]?.stream as ServerHttp2Stream;
  await until(() => stream.closed, what("the member's stream to be reset"));
  t.is(stream.rstCode, constants.NGHTTP2_CANCEL);
  h2.destroy();
  await m.close();
});

test("a paused call is not timed: the client, not the member, is waited on (manual clock)", async (t) => {
  const clock = new ManualClock();
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    stream.write("x");
  });
  const { t: h2 } = transport({ a: m.url }, { response: 5_000 }, clock);
  const sink = new Recorder();
  const call = h2.open("a", request(), sink);
  call.end();
  await until(() => sink.events.includes("headers"), what("the response head"));
  call.pause();
  clock.advance(60_000);
  t.deepEqual(sink.events, ["ready", "headers"]);
  call.resume();
  clock.advance(5_100);
  t.deepEqual(sink.events, ["ready", "headers", "failed:timeout"], "timed again once resumed");
  h2.destroy();
  await m.close();
});

test("an idle session closes after timeouts.keepAlive (manual clock); a busy one does not", async (t) => {
  const clock = new ManualClock();
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    stream.end();
  });
  const { t: h2 } = transport({ a: m.url }, { keepAlive: 4_000, response: 60_000 }, clock);
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to end"));
  clock.advance(3_900);
  t.is(h2.stats("a")?.sessions, 1);
  t.false(m.sessions[0]?.closed);
  clock.advance(200);
  await until(() => m.sessions[0]?.closed || m.sessions[0]?.destroyed, what("the member to see the session close"));
  await until(() => h2.stats("a")?.sessions === 0, what("the session to leave the pool"));
  t.pass();
  h2.destroy();
  await m.close();
});

test("response flow control: a paused call stops the member (its window fills), nothing buffered without bound", async (t) => {
  const total = 8 * 1024 * 1024;
  let written = 0;
  let blocked = false;
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    const chunk = Buffer.alloc(16 * 1024, 120);
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!stream.write(chunk)) {
          blocked = true;
          stream.once("drain", pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  const call = h2.open("a", request(), sink);
  call.end();
  await until(() => sink.events.includes("headers"), what("the response head"));
  call.pause();
  await until(() => blocked, what("the member's writes to block"));
  // Give the member a chance to push more than the windows allow; it cannot.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const stalled = written;
  t.true(stalled < total / 2, `member wrote ${stalled} of ${total} bytes to a paused call`);
  call.resume();
  await until(() => sink.over, what("the whole response"));
  t.is(Buffer.concat(sink.body).length, total);
  h2.destroy();
  await m.close();
});

test("request flow control: write returns false while the member does not read, drained when it does", async (t) => {
  let member$: ServerHttp2Stream | undefined;
  let received = 0;
  const m = await member((stream) => {
    member$ = stream;
    stream.pause();
    stream.on("data", (c: Buffer) => {
      received += c.length;
    });
    stream.on("end", () => {
      stream.respond({ ":status": 200 });
      stream.end(String(received));
    });
  });
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  const call = h2.open("a", request({ hasBody: true }), sink);
  await until(() => sink.events.includes("ready"), what("the stream to open"));
  const chunk = Buffer.alloc(16 * 1024, 97);
  let sent = 0;
  while (call.write(chunk)) {
    sent += chunk.length;
    t.true(sent < 4 * 1024 * 1024, "write never said stop");
    if (sent >= 4 * 1024 * 1024) break;
  }
  sent += chunk.length;
  t.is(sink.drains, 0);
  member$?.resume();
  await until(() => sink.drains > 0, what("drained once the member reads"));
  call.end();
  await until(() => sink.over, what("the response"));
  t.is(sink.text, String(sent));
  h2.destroy();
  await m.close();
});

test("drop: the member's waiting calls move on (connect), calls in flight finish", async (t) => {
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => held.push(stream), { maxConcurrentStreams: 1 });
  const { t: h2 } = transport({ a: m.url }, { sessions: 1, streams: 1 });
  const inFlight = new Recorder();
  h2.open("a", request(), inFlight).end();
  await until(() => held.length === 1, what("the stream at the member"));
  const waiting = new Recorder();
  h2.open("a", request(), waiting).end();
  h2.drop("a");
  await until(() => waiting.over, what("the waiting call to move on"));
  t.deepEqual(waiting.events, ["failed:connect"]);
  held[0]?.respond({ ":status": 200 });
  held[0]?.end("late");
  await until(() => inFlight.over, what("the call in flight to finish"));
  t.is(inFlight.text, "late");
  h2.destroy();
  await m.close();
});

test("cancel: the member's stream is reset with CANCEL and the sink hears nothing more", async (t) => {
  const m = await member(() => {});
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  const call = h2.open("a", request(), sink);
  call.end();
  await until(() => m.streams.length === 1, what("the stream at the member"));
  call.cancel();
  const stream = m.streams[0]?.stream as ServerHttp2Stream;
  await until(() => stream.closed, what("the member's stream to close"));
  t.is(stream.rstCode, constants.NGHTTP2_CANCEL);
  t.deepEqual(sink.events, ["ready"]);
  h2.destroy();
  await m.close();
});

/** A raw TCP member: every byte it receives, and what it does with a connection. */
async function rawTcpMember(onData: (socket: Socket, chunk: Buffer) => void) {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createNetServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      received.push(chunk);
      onData(socket, chunk);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => Buffer.concat(received),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** The types of the HTTP/2 frames after the client preface (RFC 9113 §4.1: 9-byte headers). */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  let at = preface.length;
  while (at + 9 <= bytes.length) {
    const length = bytes.readUIntBE(at, 3);
    types.push(bytes[at + 3] as number);
    at += 9 + length;
  }
  return types;
}

test("a member that answers in HTTP/1.1: connect (the session never became ready), and it got the preface and SETTINGS, no request", async (t) => {
  const m = await rawTcpMember((socket) => socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"));
  const { t: h2 } = transport({ a: m.url });
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => sink.over, what("the call to fail"));
  t.deepEqual(sink.events, ["failed:connect"]);
  const bytes = m.bytes();
  t.deepEqual(bytes.subarray(0, preface.length), preface);
  const types = frameTypes(bytes);
  t.is(types[0], 0x4, "SETTINGS first");
  t.false(types.includes(0x1), "no HEADERS: the call was never sent to it");
  h2.destroy();
  await m.close();
});

test("a member that accepts the connection and sends nothing: connect at timeouts.connect (manual clock), no request sent", async (t) => {
  const clock = new ManualClock();
  const m = await rawTcpMember(() => {});
  const { t: h2 } = transport({ a: m.url }, { connect: 2_000 }, clock);
  const sink = new Recorder();
  h2.open("a", request(), sink).end();
  await until(() => m.bytes().length >= preface.length, what("the client preface at the member"));
  clock.advance(1_900);
  t.deepEqual(sink.events, []);
  clock.advance(200);
  t.deepEqual(sink.events, ["failed:connect"]);
  t.false(frameTypes(m.bytes()).includes(0x1), "no HEADERS");
  t.is(h2.stats("a")?.sessions, 0);
  h2.destroy();
  await m.close();
});

test("a member is timed while it does not take the body, not once it did and the client owes the rest (manual clock)", async (t) => {
  const clock = new ManualClock();
  let memberStream: ServerHttp2Stream | undefined;
  const m = await member((stream) => {
    memberStream = stream;
    stream.pause();
  });
  const { t: h2 } = transport({ a: m.url }, { response: 5_000 }, clock);
  const sink = new Recorder();
  const call = h2.open("a", request({ hasBody: true }), sink);
  await until(() => sink.events.includes("ready"), what("the stream to open"));
  const chunk = Buffer.alloc(16 * 1024, 97);
  let sent = 0;
  while (call.write(chunk) && sent < 4 * 1024 * 1024) sent += chunk.length;
  // Not taking the body: the member is timed.
  clock.advance(4_000);
  t.deepEqual(sink.events, ["ready"]);
  memberStream?.resume();
  await until(() => sink.drains > 0, what("the member to take the body"));
  // The client now owes the rest: however long it takes, the member is not blamed.
  clock.advance(60_000);
  t.deepEqual(sink.events, ["ready"]);
  call.end();
  clock.advance(5_100);
  t.deepEqual(sink.events, ["ready", "failed:timeout"], "timed again once the request is whole");
  h2.destroy();
  await m.close();
});

test("any mix of calls and member behaviours: each call ends once, as its stream's fate says, within the stream and session caps", async (t) => {
  type Fate = "answer" | "refuse" | "reset" | "late-reset";
  const expected: Record<Fate, string[]> = {
    answer: ["ready", "headers", "end"],
    refuse: ["ready", "failed:refused"],
    reset: ["ready", "failed:reset"],
    "late-reset": ["ready", "headers", "failed:reset"],
  };
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom<Fate>("answer", "refuse", "reset", "late-reset"), { minLength: 1, maxLength: 24 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 3 }),
      async (fates, limit, sessions) => {
        const m = await member(
          (stream, headers) => {
            const fate = headers["x-fate"] as Fate;
            // Answered a turn later, so that streams overlap.
            setImmediate(() => {
              if (fate === "refuse") stream.close(constants.NGHTTP2_REFUSED_STREAM);
              else if (fate === "reset") stream.destroy(new Error("reset"));
              else {
                stream.respond({ ":status": 200 });
                if (fate === "answer") stream.end(String(headers["x-i"]));
                else stream.write("x", () => stream.destroy(new Error("late reset")));
              }
            });
          },
          { maxConcurrentStreams: limit },
        );
        const { t: h2 } = transport({ a: m.url }, { sessions, streams: 100 });
        try {
          const sinks = fates.map((fate, i) => {
            const sink = new Recorder();
            const headers = { names: ["x-fate", "x-i"], values: [fate, String(i)] };
            h2.open("a", request({ headers }), sink).end();
            return sink;
          });
          await until(() => sinks.every((s) => s.over), what("every call to end"));
          fates.forEach((fate, i) => {
            const sink = sinks[i] as Recorder;
            if (JSON.stringify(sink.events) !== JSON.stringify(expected[fate]))
              throw new Error(`call ${i} (${fate}): ${sink.events.join(", ")}`);
            if (fate === "answer" && sink.text !== String(i)) throw new Error(`call ${i} got ${sink.text}`);
          });
          if (m.maxOpen > limit) throw new Error(`${m.maxOpen} streams open on a session limited to ${limit}`);
          if (m.sessions.length > sessions) throw new Error(`${m.sessions.length} sessions, cap ${sessions}`);
        } finally {
          h2.destroy();
          await m.close();
        }
      },
    ),
    { numRuns: 25 },
  );
  t.pass();
});

test("a session draining after GOAWAY keeps its calls and does not count against the cap: new calls get a new session", async (t) => {
  const held: ServerHttp2Stream[] = [];
  const m = await member((stream) => {
    held.push(stream);
    if (held.length === 1) stream.session?.goaway(constants.NGHTTP2_NO_ERROR, stream.id);
    else {
      stream.respond({ ":status": 200 });
      stream.end("new session");
    }
  });
  const { t: h2 } = transport({ a: m.url }, { sessions: 1 });
  const first = new Recorder();
  h2.open("a", request(), first).end();
  await until(() => held.length === 1 && h2.stats("a")?.streams === 1, what("the first call at the member"));
  // The GOAWAY names the first stream as processed: it goes on; the next call cannot use that session.
  await until(() => h2.stats("a")?.draining === 1, what("the session to drain after the GOAWAY"));
  const second = new Recorder();
  h2.open("a", request(), second).end();
  await until(() => second.over, what("the second call"));
  t.deepEqual(second.events, ["ready", "headers", "end"]);
  t.is(second.text, "new session");
  t.is(m.sessions.length, 2);
  held[0]?.respond({ ":status": 200 });
  held[0]?.end("old session");
  await until(() => first.over, what("the first call to finish on its draining session"));
  t.is(first.text, "old session");
  h2.destroy();
  await m.close();
});

test("the member gets the call's time left as grpc-timeout, in at most 8 digits", async (t) => {
  t.is(grpcTimeout(250), "250m");
  t.is(grpcTimeout(0.2), "1m");
  t.is(grpcTimeout(-5), "1m", "a deadline just passed still reads as a deadline");
  t.is(grpcTimeout(99_999_999), "99999999m");
  t.is(grpcTimeout(100_000_000), "100000S");
  t.is(grpcTimeout(1e12), "99999999S");
  const clock = new ManualClock();
  const m = await member((stream) => {
    stream.respond({ ":status": 200 });
    stream.end();
  });
  const { t: h2 } = transport({ a: m.url }, {}, clock);
  const sink = new Recorder();
  const headers = { names: ["grpc-timeout"], values: ["5S"] };
  // The call's deadline was 5 s from its start; 1.5 s of it went by (an earlier attempt, say).
  h2.open("a", request({ headers, deadline: clock.now() + 3_500 }), sink).end();
  await until(() => sink.over, what("the call"));
  t.is(m.streams[0]?.headers["grpc-timeout"], "3500m");
  h2.destroy();
  await m.close();
});

test("a paused call does not stop the other calls on its session: the session's window is not the stream's", async (t) => {
  const big = Buffer.alloc(1024 * 1024, 120);
  const m = await member((stream, headers) => {
    stream.respond({ ":status": 200 });
    // The first call's response is more than one stream window; the member writes as much as it is let.
    stream.end(headers[":path"] === "/big" ? big : "small");
  });
  const { t: h2 } = transport({ a: m.url });
  const paused = new Recorder();
  const first = h2.open("a", request({ path: "/big" }), paused);
  first.end();
  await until(() => paused.events.includes("headers"), what("the big response's head"));
  first.pause();
  // What the paused call has not read stays unacknowledged; a later call on the same session still gets through.
  for (let i = 0; i < 3; i++) {
    const sink = new Recorder();
    h2.open("a", request({ path: "/small" }), sink).end();
    await until(() => sink.over, what(`small call ${i + 1} on the session of the paused one`));
    t.is(sink.text, "small");
  }
  t.is(m.sessions.length, 1, "one session carried them all");
  first.resume();
  await until(() => paused.over, what("the big response, once resumed"));
  t.is(Buffer.concat(paused.body).length, big.length);
  h2.destroy();
  await m.close();
});
