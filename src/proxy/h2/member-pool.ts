/**
 * h2c members: a few multiplexed HTTP/2 sessions per member (node:http2,
 * cleartext with prior knowledge), each carrying at most `streams` calls and
 * never more than the member's SETTINGS_MAX_CONCURRENT_STREAMS. A call
 * takes a free stream on a ready session; when every session is full a new
 * one opens, up to `sessions`; then the call waits in a bounded queue for at
 * most `proxy.timeouts.queue`. Idle sessions close after
 * `proxy.timeouts.keepAlive`.
 *
 * How a call failed is told from HTTP/2's own signals, so the retry policy
 * knows what the member can have seen: a session that never connected is
 * `connect`; a stream the member refused (REFUSED_STREAM) or never processed
 * (above the last stream id of its GOAWAY, or never sent) is `refused`; a
 * reset after that is `reset`; a frame or header the member got wrong is
 * `bad_response`. After a GOAWAY a session takes no new streams; the calls
 * it still carries finish on it.
 *
 * Flow control is node:http2's: a paused call stops reading its stream, so
 * no WINDOW_UPDATE goes out and the member stops sending; a request body is
 * written only as fast as the member's window takes it (`write` returns
 * false until `drained`).
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import type { ProxyConfig } from "../../config.ts";
import type { Logger } from "../../utils/logger.ts";
import type { Deadlines, Timed } from "../deadlines.ts";
import { prefixed } from "../path.ts";
import type { ProxyCluster } from "../upstream.ts";
import { h2Headers } from "./framing.ts";
import type {
  HeaderList,
  MemberCall,
  MemberFailure,
  MemberRequest,
  MemberSink,
  MemberTransport,
  TransportContext,
} from "./transport.ts";

/** How many sessions and streams a member gets, and the timeouts that apply to them (milliseconds). */
export interface H2cSettings {
  /** Most sessions open to one member. */
  sessions: number;
  /** Most concurrent streams on one session; the member's SETTINGS_MAX_CONCURRENT_STREAMS may lower it. */
  streams: number;
  /** Most calls waiting for a stream to one member; more are answered as a queue timeout at once. */
  queueLength: number;
  connect: number;
  response: number;
  keepAlive: number;
  queue: number;
  /** Most header fields, and bytes, a member's response head (or trailers) may hold. */
  headers: number;
  headerBytes: number;
}

/** One member's sessions (those draining after a GOAWAY among them), streams in use and calls waiting. */
export interface H2cStats {
  sessions: number;
  draining: number;
  streams: number;
  waiting: number;
}

/** A few sessions, each with as many streams as HTTP/2 peers usually allow (RFC 9113 §6.5.2 suggests ≥ 100). */
export const defaultH2c = { sessions: 4, streams: 100 } as const;

/** Bytes of request body held for a call whose stream is not open yet, before `write` asks the client to wait. */
const pendingLimit = 64 * 1024;

export function h2cSettings(config: ProxyConfig): H2cSettings {
  const { timeouts, limits } = config;
  return {
    sessions: defaultH2c.sessions,
    streams: defaultH2c.streams,
    queueLength: defaultH2c.sessions * defaultH2c.streams,
    connect: timeouts.connect,
    response: timeouts.response,
    keepAlive: timeouts.keepAlive,
    queue: timeouts.queue,
    headers: limits.headers,
    headerBytes: limits.responseHeaderBytes,
  };
}

/** The h2c transport: one MemberSessions per member, made on first use and closed when the member leaves. */
export class H2cTransport implements MemberTransport {
  readonly #members = new Map<string, MemberSessions>();
  readonly #cluster: ProxyCluster;
  readonly #deadlines: Deadlines;
  readonly #logger: Logger;
  #settings: H2cSettings;
  #closed = false;

  constructor(context: TransportContext, settings: H2cSettings = h2cSettings(context.config)) {
    this.#cluster = context.cluster;
    this.#deadlines = context.deadlines;
    this.#logger = context.logger;
    this.#settings = settings;
  }

  open(name: string, request: MemberRequest, sink: MemberSink): MemberCall {
    const call = new Call(request, sink, this.#deadlines);
    const sessions = this.#closed ? undefined : this.#sessionsOf(name);
    if (sessions === undefined) {
      // Left the cluster between lookup and now: as if its connection was refused.
      queueMicrotask(() => call.fail({ kind: "connect", error: new Error(`member ${name} is gone`) }));
      return call;
    }
    sessions.enqueue(call);
    return call;
  }

  #sessionsOf(name: string): MemberSessions | undefined {
    const member = this.#cluster.member(name);
    if (member === undefined) return undefined;
    const current = this.#members.get(name);
    if (current !== undefined && current.url === member.url) return current;
    current?.close();
    const sessions = new MemberSessions(name, member.url, this.#settings, this.#deadlines, this.#logger);
    this.#members.set(name, sessions);
    return sessions;
  }

  /** Sessions open to `name` right now (for tests and metrics). */
  stats(name: string): H2cStats | undefined {
    return this.#members.get(name)?.stats();
  }

  drop(name: string): void {
    this.#members.get(name)?.close();
    this.#members.delete(name);
  }

  reconfigure(config: ProxyConfig): void {
    this.#settings = h2cSettings(config);
    for (const sessions of this.#members.values()) sessions.settings = this.#settings;
  }

  close(): void {
    this.#closed = true;
    for (const sessions of this.#members.values()) sessions.close();
  }

  destroy(): void {
    this.#closed = true;
    for (const sessions of this.#members.values()) sessions.destroy();
    this.#members.clear();
  }
}

/** Makes the h2c transport (the TransportFactory the proxy's composition uses). */
export function h2cTransport(context: TransportContext): H2cTransport {
  return new H2cTransport(context);
}

/** One member's sessions and the calls waiting for a stream on one of them. */
export class MemberSessions implements Timed {
  readonly name: string;
  readonly url: string;
  readonly authority: string;
  readonly prefix: string;
  settings: H2cSettings;
  readonly deadlines: Deadlines;
  readonly logger: Logger;
  /** The oldest waiter's queue deadline (0: nobody waits). */
  deadline = 0;
  readonly #sessions = new Set<Session>();
  readonly #waiting: Call[] = [];
  #closed = false;

  constructor(name: string, url: string, settings: H2cSettings, deadlines: Deadlines, logger: Logger) {
    const parsed = new URL(url);
    this.name = name;
    this.url = url;
    this.authority = `http://${parsed.host}`;
    this.prefix = parsed.pathname.replace(/\/+$/, "");
    this.settings = settings;
    this.deadlines = deadlines;
    this.logger = logger;
  }

  stats(): H2cStats {
    let streams = 0;
    let draining = 0;
    for (const session of this.#sessions) {
      streams += session.active;
      if (session.state === "draining") draining++;
    }
    return { sessions: this.#sessions.size, draining, streams, waiting: this.#waiting.length };
  }

  enqueue(call: Call): void {
    if (this.#waiting.length >= this.settings.queueLength) {
      queueMicrotask(() => call.queueTimeout());
      return;
    }
    call.since = this.deadlines.now();
    call.queue = this;
    this.#waiting.push(call);
    if (this.deadline === 0) {
      this.deadline = call.since + this.settings.queue;
      this.deadlines.add(this);
    }
    this.dispatch();
  }

  /** Forgets a waiting call (cancelled before it had a stream). */
  forget(call: Call): void {
    const i = this.#waiting.indexOf(call);
    if (i >= 0) this.#waiting.splice(i, 1);
    this.#rearm();
  }

  /** Gives waiting calls free streams, opening a session when every one is full (up to the cap). */
  dispatch(): void {
    while (this.#waiting.length > 0) {
      const session = this.#free();
      if (session === undefined) break;
      const call = this.#waiting.shift() as Call;
      call.queue = undefined;
      session.start(call);
    }
    this.#rearm();
    if (this.#waiting.length === 0 || this.#closed) return;
    // Streams the sessions still connecting will offer (the member's limit is not known before its SETTINGS).
    // Sessions draining after a GOAWAY do not count against the cap: they take no new streams.
    let coming = 0;
    let usable = 0;
    for (const session of this.#sessions) {
      if (session.state === "connecting") coming += this.settings.streams;
      if (session.state === "connecting" || session.state === "ready") usable++;
    }
    if (coming < this.#waiting.length && usable < this.settings.sessions) {
      this.#sessions.add(new Session(this));
    }
  }

  /** A ready session with a free stream: the busiest such one, so idle ones can time out. */
  #free(): Session | undefined {
    let best: Session | undefined;
    for (const session of this.#sessions) {
      if (session.state !== "ready" || session.active >= session.limit) continue;
      if (best === undefined || session.active > best.active) best = session;
    }
    return best;
  }

  /** A session never connected: if no other session can serve them, the waiters move on. */
  connectFailed(session: Session, error: Error): void {
    this.#sessions.delete(session);
    for (const other of this.#sessions) {
      if (other.state !== "draining") {
        this.dispatch();
        return;
      }
    }
    const waiting = this.#waiting.splice(0);
    this.#rearm();
    for (const call of waiting) {
      call.queue = undefined;
      call.fail({ kind: "connect", error });
    }
  }

  /** A session got GOAWAY before carrying a stream: unless another session can serve them, the waiters move on. */
  refusedSession(session: Session): void {
    for (const other of this.#sessions) {
      if (other !== session && other.state !== "draining" && other.state !== "closed") {
        this.dispatch();
        return;
      }
    }
    const waiting = this.#waiting.splice(0);
    this.#rearm();
    for (const call of waiting) {
      call.queue = undefined;
      call.fail({ kind: "refused", error: new Error("member sent GOAWAY before any stream") });
    }
  }

  removed(session: Session): void {
    this.#sessions.delete(session);
    this.dispatch();
  }

  /** Waiters past `timeouts.queue` are answered (by their exchange) as a queue timeout. */
  expire(): void {
    const now = this.deadlines.now();
    const limit = this.settings.queue;
    while (this.#waiting.length > 0 && (this.#waiting[0] as Call).since + limit <= now) {
      const call = this.#waiting.shift() as Call;
      call.queue = undefined;
      call.queueTimeout();
    }
    this.#rearm();
  }

  #rearm(): void {
    const first = this.#waiting[0];
    if (first === undefined) {
      this.deadline = 0;
      this.deadlines.delete(this);
    } else {
      this.deadline = first.since + this.settings.queue;
    }
  }

  /** The member left or shuts down: no new streams; calls in flight finish, waiters move on. */
  close(): void {
    this.#closed = true;
    for (const session of [...this.#sessions]) session.close();
    const waiting = this.#waiting.splice(0);
    this.#rearm();
    for (const call of waiting) {
      call.queue = undefined;
      call.fail({ kind: "connect", error: new Error(`member ${this.name} left`) });
    }
  }

  destroy(): void {
    this.close();
    for (const session of [...this.#sessions]) session.destroy();
  }
}

/** `connecting` until the member's first SETTINGS; `draining` after a GOAWAY or close(): no new streams. */
type SessionState = "connecting" | "ready" | "draining" | "closed";

/** One HTTP/2 session to a member. */
class Session implements Timed {
  readonly #owner: MemberSessions;
  readonly #session: ClientHttp2Session;
  state: SessionState = "connecting";
  /** Connect deadline while connecting; the keep-alive deadline while idle. */
  deadline = 0;
  /** Streams in use. */
  active = 0;
  /** Streams ever started on it. */
  started = 0;
  /** The last stream id the member's GOAWAY said it would process; -1 before any GOAWAY. */
  goawayLast = -1;
  /** The error code of that GOAWAY. */
  goawayCode = 0;
  /** Why the session failed, once it did (applies to its streams that report nothing better). */
  failure: MemberFailure | undefined;

  constructor(owner: MemberSessions) {
    this.#owner = owner;
    const { settings, deadlines } = owner;
    this.deadline = deadlines.now() + settings.connect;
    deadlines.add(this);
    const session = connect(owner.authority, {
      settings: { enablePush: false, maxHeaderListSize: settings.headerBytes },
      // Pseudo-headers count too.
      maxHeaderListPairs: settings.headers + 4,
      peerMaxConcurrentStreams: settings.streams,
    });
    this.#session = session;
    // Ready at the member's first SETTINGS, not at the TCP connect: its stream limit is known by then, and a
    // member that accepts connections but does not speak HTTP/2 is a connect failure (timeouts.connect).
    session.on("remoteSettings", () => this.#connected());
    session.on("goaway", (code: number, last: number) => this.#goaway(code, last));
    session.on("error", (error: Error) => this.#errored(error));
    session.on("close", () => this.#closed());
  }

  /** The member's limit on concurrent streams, and ours. */
  get limit(): number {
    const remote = this.#session.remoteSettings.maxConcurrentStreams ?? Number.POSITIVE_INFINITY;
    return Math.min(this.#owner.settings.streams, remote);
  }

  /** The node:http2 session, for a call to open its stream on. */
  get sessionRef(): ClientHttp2Session {
    return this.#session;
  }

  start(call: Call): void {
    this.started++;
    this.active++;
    this.deadline = 0;
    call.start(this, this.#owner);
  }

  /** A call's stream closed: the slot is free. */
  streamClosed(): void {
    this.active--;
    if (this.state === "draining" && this.active === 0) this.#session.close();
    if (this.state === "ready" && this.active === 0) {
      this.deadline = this.#owner.deadlines.now() + this.#owner.settings.keepAlive;
    }
    this.#owner.dispatch();
  }

  expire(): void {
    if (this.state === "connecting") {
      this.failure = { kind: "connect", error: new Error("connect timeout") };
      this.#gone();
      this.#session.destroy();
      this.#owner.connectFailed(this, this.failure.error);
    } else if (this.state === "ready" && this.active === 0) {
      // Idle past keepAlive: closed with GOAWAY(NO_ERROR).
      this.close();
    }
  }

  #connected(): void {
    if (this.state !== "connecting") {
      // A later SETTINGS may change the member's stream limit.
      this.#owner.dispatch();
      return;
    }
    this.state = "ready";
    this.deadline = this.#owner.deadlines.now() + this.#owner.settings.keepAlive;
    this.#owner.dispatch();
  }

  #goaway(code: number, last: number): void {
    this.goawayLast = last;
    this.goawayCode = code;
    // New streams go elsewhere; streams up to `last` may finish here (node:http2 closes the session after them).
    if (this.state === "ready" || this.state === "connecting") this.state = "draining";
    this.deadline = 0;
    this.#owner.logger.debug({ member: this.#owner.name, code, last }, "member sent GOAWAY");
    // A member that turns away a session before it carried anything is not taking calls: the waiters move on
    // rather than open session after session.
    if (this.started === 0) this.#owner.refusedSession(this);
    else this.#owner.dispatch();
  }

  #errored(error: Error): void {
    this.failure ??= sessionFailure(error, this.state === "connecting");
    if (this.state === "connecting") {
      this.#gone();
      this.#owner.connectFailed(this, error);
    }
  }

  #closed(): void {
    if (this.state === "closed") return;
    const connecting = this.state === "connecting";
    this.#gone();
    if (connecting) this.#owner.connectFailed(this, this.failure?.error ?? new Error("member closed the connection"));
    else this.#owner.removed(this);
  }

  #gone(): void {
    this.state = "closed";
    this.deadline = 0;
    this.#owner.deadlines.delete(this);
  }

  /** No new streams; the session ends (GOAWAY) when its streams do. */
  close(): void {
    if (this.state === "closed") return;
    if (this.state !== "draining") this.state = "draining";
    this.#session.close();
  }

  destroy(): void {
    this.#session.destroy();
  }
}

/** A call's failure from a session-level error. */
function sessionFailure(error: Error, connecting: boolean): MemberFailure {
  if (connecting) return { kind: "connect", error };
  const code = (error as NodeJS.ErrnoException).code ?? "";
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ERR_HTTP2_SESSION_ERROR") return { kind: "reset", error };
  if (code === "ERR_HTTP2_ERROR" || code.startsWith("ERR_HTTP2_INVALID") || code === "ERR_HTTP2_PROTOCOL_ERROR")
    return { kind: "bad_response", error };
  return { kind: "error", error };
}

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_CANCEL,
  NGHTTP2_FRAME_SIZE_ERROR,
  NGHTTP2_COMPRESSION_ERROR,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_FLAG_END_STREAM,
} = constants;

/** One request on one stream (or waiting for one). */
export class Call implements MemberCall, Timed {
  readonly #request: MemberRequest;
  readonly #sink: MemberSink;
  readonly #deadlines: Deadlines;
  /** When it began to wait for a stream, and where (while it waits). */
  since = 0;
  queue: MemberSessions | undefined;
  /** The response deadline (0: the member is not timed right now). */
  deadline = 0;
  #session: Session | undefined;
  #stream: ClientHttp2Stream | undefined;
  #pending: Buffer[] | undefined;
  #pendingBytes = 0;
  #ended = false;
  /** The client's trailer fields, sent on 'wantTrailers' when the request announced them. */
  #requestTrailers: HeaderList | undefined;
  #paused = false;
  /** Over: answered, failed, timed out or cancelled; nothing more goes to the sink. */
  #done = false;
  #responded = false;
  #readEnded = false;
  #error: Error | undefined;
  #wantDrain = false;
  /** `timeouts.response` when the stream started (a reload applies to later calls). */
  #responseMs = 0;

  constructor(request: MemberRequest, sink: MemberSink, deadlines: Deadlines) {
    this.#request = request;
    this.#sink = sink;
    this.#deadlines = deadlines;
  }

  /** The stream this call runs on: sent now, with what the client already sent of its body. */
  start(session: Session, owner: MemberSessions): void {
    if (this.#done) {
      session.streamClosed();
      return;
    }
    this.#session = session;
    this.#responseMs = owner.settings.response;
    const request = this.#request;
    // Trailers the client announced (`trailer`) can only follow if the stream waits for them.
    const trailers = request.hasBody && request.headers.names.includes("trailer");
    const endStream = !request.hasBody || (this.#ended && this.#pendingBytes === 0 && !trailers);
    let stream: ClientHttp2Stream;
    try {
      // The default priority given, so node:http2 does not add it to its copy of the options (a bigger object).
      stream = session.sessionRef.request(
        this.#headers(owner),
        trailers
          ? { endStream, weight: 16, parent: 0, exclusive: false, waitForTrailers: true }
          : { endStream, weight: 16, parent: 0, exclusive: false },
      );
    } catch (error) {
      // The session went away under us (closed between dispatch and now): the member saw nothing.
      session.streamClosed();
      this.fail({ kind: "refused", error: error as Error });
      return;
    }
    this.#stream = stream;
    stream.on("response", (headers: IncomingHttpHeaders, flags: number) => this.#response(headers, flags));
    stream.on("data", (chunk: Buffer) => this.#data(chunk));
    stream.on("trailers", (trailers: IncomingHttpHeaders) => this.#trailers(trailers));
    stream.on("end", () => this.#end());
    stream.on("error", (error: Error) => {
      this.#error ??= error;
    });
    stream.on("drain", () => {
      if (this.#wantDrain && !this.#done) {
        this.#wantDrain = false;
        // The member took the body: until the client sends the rest, the client is waited on, not the member.
        if (!this.#ended && !this.#responded) this.deadline = 0;
        this.#sink.drained();
      }
    });
    stream.on("close", () => this.#closed(session, stream));
    if (trailers)
      stream.on("wantTrailers", () => {
        try {
          stream.sendTrailers(h2Headers(this.#requestTrailers ?? { names: [], values: [] }));
        } catch {
          // A field HTTP/2 does not allow: the stream ends short, as a reset.
          stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        }
      });
    this.#deadlines.add(this);
    this.#sink.ready();
    const pending = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    let flowing = true;
    if (pending !== undefined) for (const chunk of pending) flowing = stream.write(chunk);
    if (this.#ended && !endStream) stream.end();
    if (this.#ended) this.#arm();
    else if (!flowing) {
      this.#wantDrain = true;
      this.#arm();
    } else if (this.#wantDrain) {
      this.#wantDrain = false;
      this.#sink.drained();
    }
  }

  #headers(owner: MemberSessions): OutgoingHttpHeaders {
    const request = this.#request;
    const out: OutgoingHttpHeaders = {
      ":method": request.method,
      ":path": prefixed(owner.prefix, request.path),
      ":scheme": "http",
      ":authority": request.authority || new URL(owner.url).host,
    };
    const { names, values } = request.headers;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const value = values[i] as string;
      const had = out[name];
      if (had === undefined) out[name] = value;
      else if (Array.isArray(had)) had.push(value);
      else out[name] = [String(had), value];
    }
    if (request.teTrailers) out.te = "trailers";
    if (request.contentLength !== undefined) out["content-length"] = String(request.contentLength);
    // The member learns the time left, not the client's whole budget (a retry has less).
    if (request.deadline !== 0 && out["grpc-timeout"] !== undefined) {
      out["grpc-timeout"] = grpcTimeout(request.deadline - this.#deadlines.now());
    }
    return out;
  }

  write(chunk: Buffer): boolean {
    if (this.#done) return true;
    const stream = this.#stream;
    if (stream === undefined) {
      this.#pending ??= [];
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes <= pendingLimit) return true;
      this.#wantDrain = true;
      return false;
    }
    if (stream.write(chunk)) return true;
    // The member's window is full: it is timed until it takes more.
    this.#wantDrain = true;
    if (this.deadline === 0) this.#arm();
    return false;
  }

  end(trailers?: HeaderList): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#requestTrailers = trailers;
    const stream = this.#stream;
    if (stream === undefined || this.#done) return;
    if (this.#request.hasBody) stream.end();
    this.#arm();
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
    this.deadline = 0;
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
    if (this.#stream !== undefined && (this.#ended || this.#responded)) this.#arm();
  }

  cancel(): void {
    if (this.#done) return;
    this.#finish();
    if (this.queue !== undefined) {
      this.queue.forget(this);
      this.queue = undefined;
    }
    this.#stream?.close(NGHTTP2_CANCEL);
  }

  /** The response deadline passed: the stream is cancelled and the call failed as a timeout. */
  expire(): void {
    if (this.#done) return;
    this.#stream?.close(NGHTTP2_CANCEL);
    this.fail({ kind: "timeout", error: new Error("response timeout"), responseBytes: this.#responded });
  }

  #arm(): void {
    if (this.#done || this.#paused || this.#session === undefined) return;
    this.deadline = this.#deadlines.now() + this.#responseMs;
  }

  #response(headers: IncomingHttpHeaders, flags: number): void {
    if (this.#done) return;
    this.#responded = true;
    if (this.deadline !== 0) this.#arm();
    const status = Number(headers[":status"]);
    // END_STREAM on the head: nothing follows (a trailers-only gRPC response, a 204…).
    this.#sink.headers(status, headerList(headers), (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
  }

  #data(chunk: Buffer): void {
    if (this.#done) return;
    if (this.deadline !== 0) this.#arm();
    this.#sink.data(chunk);
  }

  #trailers(trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    this.#sink.trailers(headerList(trailers));
  }

  #end(): void {
    // node:http2 ends the readable side of a reset stream too: whether the response is whole is known at close.
    this.#readEnded = true;
  }

  #closed(session: Session, stream: ClientHttp2Stream): void {
    session.streamClosed();
    if (this.#done) return;
    if (this.#readEnded && this.#responded && (stream.rstCode ?? NGHTTP2_NO_ERROR) === NGHTTP2_NO_ERROR) {
      this.#finish();
      this.#sink.end();
      return;
    }
    if (this.#readEnded && !this.#responded && stream.rstCode === NGHTTP2_NO_ERROR) {
      // A stream that ends with no response head is the member's fault.
      this.fail({ kind: "bad_response", error: new Error("member ended the stream without a response") });
      return;
    }
    this.fail(streamFailure(stream, session, this.#error, this.#responded));
  }

  #finish(): void {
    this.#done = true;
    this.deadline = 0;
    this.#deadlines.delete(this);
  }

  fail(failure: MemberFailure): void {
    if (this.#done) return;
    this.#finish();
    this.#stream?.close(NGHTTP2_CANCEL);
    this.#sink.failed(failure);
  }

  queueTimeout(): void {
    if (this.#done) return;
    this.#finish();
    this.#sink.queueTimeout();
  }
}

/**
 * How a stream that closed before its response ended failed. What the member can have seen decides: a stream
 * it refused or never processed (REFUSED_STREAM; GOAWAY whose last stream id is below it; never sent) is
 * `refused`; a frame it got wrong is `bad_response`; anything else after the stream was sent is `reset`.
 */
export function streamFailure(
  stream: ClientHttp2Stream,
  session: { goawayLast: number; failure: MemberFailure | undefined },
  error: Error | undefined,
  responded: boolean,
): MemberFailure {
  const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
  const id = stream.id;
  const base = { responseBytes: responded, http2Code: code };
  if (code === NGHTTP2_REFUSED_STREAM && !responded)
    return { ...base, kind: "refused", error: error ?? new Error("member refused the stream") };
  if (!responded && (id === undefined || (session.goawayLast >= 0 && id > session.goawayLast)))
    return { ...base, kind: "refused", error: error ?? new Error("member did not process the stream (GOAWAY)") };
  // ENHANCE_YOUR_CALM is also how node:http2 refuses a response head over its header limits.
  if (
    code === NGHTTP2_PROTOCOL_ERROR ||
    code === NGHTTP2_FRAME_SIZE_ERROR ||
    code === NGHTTP2_COMPRESSION_ERROR ||
    code === NGHTTP2_ENHANCE_YOUR_CALM
  ) {
    return { ...base, kind: "bad_response", error: error ?? new Error(`stream error ${code}`) };
  }
  const sessionFailed = session.failure;
  if (sessionFailed !== undefined && sessionFailed.kind !== "connect")
    return { ...base, kind: sessionFailed.kind, error: sessionFailed.error };
  if (error !== undefined) {
    const failure = sessionFailure(error, false);
    return { ...base, kind: failure.kind === "error" ? "reset" : failure.kind, error };
  }
  return {
    ...base,
    kind: "reset",
    error: new Error(responded ? "member closed the stream mid-response" : "member closed the stream before answering"),
  };
}

/** Milliseconds as a grpc-timeout value: at most 8 digits (gRPC's PROTOCOL-HTTP2), in ms or else seconds. */
export function grpcTimeout(ms: number): string {
  const left = Math.max(1, Math.ceil(ms));
  return left < 100_000_000 ? `${left}m` : `${Math.min(99_999_999, Math.ceil(left / 1000))}S`;
}

/** End-to-end fields of a received head: pseudo-headers dropped, repeated fields one entry each. */
export function headerList(headers: IncomingHttpHeaders): HeaderList {
  const names: string[] = [];
  const values: string[] = [];
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58) continue; // ':'
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const v of value) {
        names.push(name);
        values.push(v);
      }
    } else {
      names.push(name);
      values.push(String(value));
    }
  }
  return { names, values };
}
