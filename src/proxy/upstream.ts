/**
 * Member connections: a pool per member (keep-alive, one request at a time
 * on each connection, at most `proxy.connections`, waiters queued), each
 * connection a raw socket whose responses llhttp parses. Response bodies go
 * to the exchange as slices of the received buffers, framing included.
 *
 * Member sockets read into one buffer shared by all of them (`net`'s
 * `onread`): no Buffer, no 'data' event and no stream bookkeeping per read,
 * where a stream read allocates 64 KB, shrinks it, wraps it and queues a tick.
 * Reads run one at a time and each is handled before the next, so one buffer
 * serves every socket, as long as nothing keeps a slice of it past the read.
 * A sink that says `borrowsReadBuffer` copies what it keeps (the HTTP/1.1
 * exchange writes each response's bytes to the client from a copy); any other
 * sink gets every read in a buffer of its own, as a stream read gave it.
 */
import { connect, type Socket } from "node:net";
import type { RoutingTable } from "../handoff/table.ts";
import { protocolOf } from "../membership/protocol.ts";
import type { Member } from "../membership/source.ts";
import type { Deadlines, Timed } from "./deadlines.ts";
import { type HeadLimits, OK, PAUSED, Parser } from "./llhttp.ts";
import type { UpstreamFailure } from "./observer.ts";

/** What the proxy needs of a cluster; `Cluster` satisfies it, and so can a worker's own view. */
export interface ProxyCluster {
  /** The table requests are routed by. */
  readonly routing: RoutingTable;
  /** Milliseconds a request waits for a partition no member holds ready (coordinated hand-offs); default 2000. */
  readonly handoffWait?: number | undefined;
  member(name: string): Member | undefined;
  listen(listener: {
    memberDown?(member: Member): void;
    memberUp?(member: Member): void;
    /** The member is reached differently now (a new URL or protocol under the same name). */
    memberChanged?(member: Member, previous: Member): void;
  }): () => void;
}

/** The exchange side of a member connection: what happens to a response. */
export interface ResponseSink {
  /** The connection is ready for this request (new, or reused from the pool). */
  upstreamReady(conn: UpstreamConnection): void;
  /** A response head arrived; false: the exchange dropped this connection (retry, tunnel). */
  upstreamHead(conn: UpstreamConnection, parser: Parser, rest: Buffer, pos: number): boolean;
  upstreamBody(buffer: Buffer, start: number, end: number): void;
  /** The response is complete (the connection is already back in the pool, or closed). */
  upstreamDone(conn: UpstreamConnection): void;
  upstreamFailed(conn: UpstreamConnection | undefined, failure: UpstreamFailure, error: Error): void;
  /** The member's socket can take more of the request body. */
  upstreamDrained(): void;
  /** Around each batch of response bytes, so the head and body go to the client in one write. */
  batch(start: boolean): void;
  /** No connection came free within `timeouts.queue`: the exchange is no longer waiting. */
  queueTimeout(): void;
  /**
   * true: the buffers `upstreamHead` and `upstreamBody` get are valid only during the call (the member
   * sockets' shared read buffer), and the sink copies whatever it keeps or writes. Absent: each read comes
   * in a buffer of its own, which the sink may keep.
   */
  readonly borrowsReadBuffer?: boolean;
}

/** What every member socket reads into (see the top of this file). */
const readBuffer = Buffer.allocUnsafeSlow(64 * 1024);

export interface PoolSettings {
  connections: number;
  connect: number;
  response: number;
  keepAlive: number;
  /** Most milliseconds a request waits for a free connection. */
  queue: number;
  /** What a member's response head may hold (`proxy.limits.headers`, `responseHeaderBytes`): memory stays bounded. */
  limits: HeadLimits;
}

type State = "connecting" | "busy" | "idle" | "closed";

export class UpstreamConnection implements Timed {
  readonly socket: Socket;
  readonly pool: UpstreamPool;
  readonly parser: Parser;
  sink: ResponseSink | undefined;
  state: State = "connecting";
  deadline = 0;
  /** Whether the response head went on to the client: a failure now truncates it. */
  responding = false;
  /** Whether a request was already answered on this connection (a reused one may be stale). */
  reused = false;
  /** The whole request (head and body) was written: with the response fully read, the connection may be reused. */
  requestWritten = false;
  /** A byte of the current response arrived. */
  responseBytes = false;
  /** The member closed or reset the connection. */
  peerClosed = false;
  /** Held by a request whose body is still arriving (counted against the pool's upload share). */
  uploading = false;
  #inBody = false;
  #reusable = true;
  /** Handed to an Upgrade tunnel: reads become 'data' events. */
  #detached = false;

  constructor(pool: UpstreamPool, sink: ResponseSink) {
    this.pool = pool;
    this.sink = sink;
    this.parser = new Parser("response", pool.settings.limits);
    const socket = connect({
      host: pool.host,
      port: pool.port,
      noDelay: true,
      onread: { buffer: readBuffer, callback: (length: number) => this.#read(length) },
    });
    this.socket = socket;
    this.deadline = pool.deadlines.now() + pool.settings.connect;
    pool.deadlines.add(this);
    socket.on("connect", () => this.#connected());
    socket.on("end", () => this.#ended());
    socket.on("error", (error: Error) => this.#errored(error));
    socket.on("close", () => this.#closed());
    socket.on("drain", () => this.sink?.upstreamDrained());
  }

  /** Hands the connection to an exchange (from the pool's idle list). */
  assign(sink: ResponseSink): void {
    this.socket.resume();
    this.sink = sink;
    this.state = "busy";
    this.reused = true;
    this.responding = false;
    this.requestWritten = false;
    this.responseBytes = false;
    this.deadline = 0;
    sink.upstreamReady(this);
  }

  write(data: Buffer | string): boolean {
    return typeof data === "string" ? this.socket.write(data, "latin1") : this.socket.write(data);
  }

  /** Starts (or restarts) the wait for the member's next bytes (or for it to take more of the request). */
  armResponse(): void {
    this.deadline = this.pool.deadlines.now() + this.pool.settings.response;
  }

  /** Stops timing the member: it is waiting on the client (a body still arriving, a client not reading). */
  suspend(): void {
    this.deadline = 0;
  }

  /** Stops reading the member's response until the client catches up; the member is not timed meanwhile. */
  pauseResponse(): void {
    this.socket.pause();
    this.deadline = 0;
  }

  resumeResponse(): void {
    this.socket.resume();
    if (this.state === "busy" && (this.requestWritten || this.responding)) this.armResponse();
  }

  /** Tells the parser the coming response answers a HEAD: no body follows. */
  expectNoBody(noBody: boolean): void {
    this.parser.skipBody = noBody;
  }

  /** Drops the connection without telling the exchange (aborted, discarded or shut down). */
  destroy(): void {
    this.sink = undefined;
    this.#close();
    this.socket.destroy();
  }

  /**
   * Takes the socket out of the pool for an Upgrade tunnel; the parser is done with it. From now on each read
   * is emitted as a 'data' event, in a buffer of its own, so the tunnel pipes it like any socket.
   */
  detach(): Socket {
    this.sink = undefined;
    this.#detached = true;
    this.#close();
    this.socket.removeAllListeners("end");
    this.socket.removeAllListeners("drain");
    this.socket.removeAllListeners("close");
    this.socket.removeAllListeners("error");
    return this.socket;
  }

  expire(): void {
    if (this.state === "connecting") this.#fail("connect", new Error("connect timeout"));
    else if (this.state === "busy") this.#fail("timeout", new Error("response timeout"));
    else if (this.state === "idle") this.destroy();
  }

  #connected(): void {
    if (this.state !== "connecting") return;
    this.state = "busy";
    this.deadline = 0;
    if (this.sink === undefined) this.pool.release(this);
    else this.sink.upstreamReady(this);
  }

  /** `length` bytes arrived in `readBuffer`. */
  #read(length: number): boolean {
    const bytes = readBuffer.subarray(0, length);
    if (this.#detached) this.socket.emit("data", Buffer.from(bytes));
    else this.#data(this.sink?.borrowsReadBuffer === true ? bytes : Buffer.from(bytes));
    // Reading stops only by pause() (backpressure), never by this return value.
    return true;
  }

  #data(chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined || this.state !== "busy") {
      // Bytes nobody asked for (on an idle connection): it cannot be trusted for another request.
      this.destroy();
      return;
    }
    if (this.deadline !== 0) this.armResponse();
    this.responseBytes = true;
    const parser = this.parser;
    sink.batch(true);
    let start = 0;
    for (;;) {
      const inBody = this.#inBody;
      const code = parser.execute(chunk, start);
      const pos = parser.pos;
      if (code !== OK && code !== PAUSED) {
        sink.batch(false);
        const exceeded = parser.exceeded;
        this.#fail(
          "bad_response",
          new Error(
            exceeded === undefined
              ? `member sent invalid HTTP: ${parser.errorReason()}`
              : `member's response head is over proxy.limits.${exceeded === "headers" ? "headers" : "responseHeaderBytes"}`,
          ),
        );
        return;
      }
      if (inBody && pos > start) {
        if (!parser.decode) sink.upstreamBody(chunk, start, pos);
        else {
          // Decoded spans, collected during execute(), passed on now that llhttp has returned.
          const spans = parser.spans;
          for (let i = 0; i < spans.length; i += 2)
            sink.upstreamBody(chunk, spans[i] as number, spans[i + 1] as number);
          spans.length = 0;
        }
      }
      if (code === OK) break;
      start = pos;
      if (parser.headReady) {
        parser.headReady = false;
        this.responding = parser.status >= 200;
        this.#inBody = parser.status >= 200 && !parser.done;
        if (!sink.upstreamHead(this, parser, chunk, pos)) {
          sink.batch(false);
          return;
        }
      }
      if (parser.done) {
        parser.done = false;
        this.#inBody = false;
        if (parser.status < 200) continue; // an informational response; the final one follows
        // Bytes after the response are not ours to read: such a connection is not reused.
        this.#finished(start === chunk.length && parser.keepAlive);
        sink.batch(false);
        return;
      }
    }
    sink.batch(false);
  }

  #finished(reusable: boolean): void {
    const sink = this.sink as ResponseSink;
    this.sink = undefined;
    this.responding = false;
    this.deadline = 0;
    this.parser.skipBody = false;
    this.parser.decode = false;
    this.parser.spans.length = 0;
    // Reused only when both directions ended cleanly (Go's wroteRequest, undici's rule): a member that answered
    // early still expects the rest of the body, and the next request would be read as that body.
    if (reusable && this.#reusable && this.requestWritten) this.pool.release(this);
    else this.destroy();
    sink.upstreamDone(this);
  }

  /** The exchange will not reuse this connection (the request was cut short). */
  noReuse(): void {
    this.#reusable = false;
  }

  #ended(): void {
    this.peerClosed = true;
    // The member closed an idle connection (its keep-alive timeout): gone from the pool before anyone picks it.
    if (this.state === "idle") {
      this.destroy();
      return;
    }
    if (this.state !== "busy" || this.sink === undefined) return;
    if (this.responding && this.parser.needsEof) {
      // A close-delimited response ends here.
      if (this.parser.finish() === OK || this.parser.done) {
        this.parser.done = false;
        this.#finished(false);
        return;
      }
    }
    this.#fail(
      "reset",
      new Error(this.responding ? "member closed the connection mid-response" : "member closed the connection"),
    );
  }

  #errored(error: Error): void {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (this.state === "connecting") {
      this.#fail("connect", error);
      return;
    }
    // On an established connection only a reset is the member's doing; EHOSTUNREACH and the like may come
    // after the request was delivered, so they are not connect failures.
    if (code === "ECONNRESET" || code === "EPIPE") {
      this.peerClosed = true;
      this.#fail("reset", error);
    } else this.#fail("error", error);
  }

  #closed(): void {
    if (this.state === "closed") return;
    this.peerClosed = true;
    this.#fail(this.state === "connecting" ? "connect" : "reset", new Error("member closed the connection"));
  }

  #fail(failure: UpstreamFailure, error: Error): void {
    const sink = this.sink;
    this.destroy();
    sink?.upstreamFailed(this, failure, error);
  }

  #close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.deadline = 0;
    this.pool.deadlines.delete(this);
    this.pool.remove(this);
    this.parser.free();
  }

  /** Back in the pool's idle list, waiting for the next request. */
  idle(): void {
    // Paused for a slow client by the exchange that just ended: the next one starts flowing.
    this.socket.resume();
    this.state = "idle";
    this.reused = true;
    this.deadline = this.pool.deadlines.now() + this.pool.settings.keepAlive;
  }
}

/** An exchange waiting for a connection, since when, and whether its body is still arriving. */
interface Waiter {
  sink: ResponseSink;
  since: number;
  upload: boolean;
}

/**
 * One member's connections, at most `connections` of them. Requests still
 * receiving their bodies (uploads) may hold at most half of them; the other
 * half stays for requests that are whole, so stalled uploads cannot starve a
 * member. A request waits for a connection at most `queue` ms.
 */
export class UpstreamPool implements Timed {
  readonly name: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The member URL's path, without a trailing slash, put before every request path ("" for none). */
  readonly prefix: string;
  /** How the member speaks: an h2c member takes no HTTP/1.1 requests (the exchange answers 502 instead). */
  readonly protocol: "h1" | "h2c";
  settings: PoolSettings;
  readonly deadlines: Deadlines;
  /** The oldest waiter's queue deadline (0: nobody waits). */
  deadline = 0;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  /** Whole requests waiting, oldest first. */
  readonly #waiting: Waiter[] = [];
  /** Uploads waiting for their share, oldest first. */
  readonly #uploadsWaiting: Waiter[] = [];
  /** Connections held by requests whose bodies are still arriving. */
  #uploads = 0;
  #closed = false;

  constructor(name: string, url: string, settings: PoolSettings, deadlines: Deadlines, protocol: "h1" | "h2c" = "h1") {
    const parsed = new URL(url);
    this.name = name;
    this.url = url;
    this.protocol = protocol;
    this.host = parsed.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
    this.prefix = parsed.pathname.replace(/\/+$/, "");
    this.settings = settings;
    this.deadlines = deadlines;
  }

  /** Connections uploads may hold at once: half the cap (at least one). */
  get uploadShare(): number {
    return Math.max(1, Math.floor(this.settings.connections / 2));
  }

  /** Connections open (busy, idle or connecting), and of them held by uploads; for tests and metrics. */
  get size(): { open: number; uploads: number; waiting: number } {
    return {
      open: this.#all.size,
      uploads: this.#uploads,
      waiting: this.#waiting.length + this.#uploadsWaiting.length,
    };
  }

  /** Gives `sink` a connection now (idle or new) or once one is free; `upload`: its body is still arriving. */
  acquire(sink: ResponseSink, upload = false): void {
    if (upload && this.#uploads >= this.uploadShare) {
      this.#wait(this.#uploadsWaiting, sink, upload);
      return;
    }
    if (!this.#give(sink, upload)) this.#wait(upload ? this.#uploadsWaiting : this.#waiting, sink, upload);
  }

  /** A connection for `sink` right now, if one is idle or may be opened. */
  #give(sink: ResponseSink, upload: boolean): boolean {
    // An idle connection the member already closed (readable EOF) is not used: the request would fail on it.
    let idle = this.#idle.pop();
    while (idle !== undefined && (idle.socket.readableEnded || idle.socket.destroyed)) {
      idle.destroy();
      idle = this.#idle.pop();
    }
    if (idle !== undefined) {
      if (upload) this.#holdUpload(idle);
      idle.assign(sink);
      return true;
    }
    if (this.#all.size < this.settings.connections && !this.#closed) {
      const conn = new UpstreamConnection(this, sink);
      this.#all.add(conn);
      if (upload) this.#holdUpload(conn);
      return true;
    }
    return false;
  }

  #holdUpload(conn: UpstreamConnection): void {
    conn.uploading = true;
    this.#uploads++;
  }

  /** The request on `conn` was fully written: it no longer counts against the uploads' share. */
  uploadDone(conn: UpstreamConnection): void {
    if (!conn.uploading) return;
    conn.uploading = false;
    this.#uploads--;
    this.#serveUploads();
  }

  #wait(queue: Waiter[], sink: ResponseSink, upload: boolean): void {
    const since = this.deadlines.now();
    queue.push({ sink, since, upload });
    if (this.deadline === 0) {
      this.deadline = since + this.settings.queue;
      this.deadlines.add(this);
    }
  }

  /** Waiters past `timeouts.queue` are answered 503 (by their exchange). */
  expire(): void {
    const now = this.deadlines.now();
    const limit = this.settings.queue;
    for (const queue of [this.#waiting, this.#uploadsWaiting]) {
      while (queue.length > 0 && (queue[0] as Waiter).since + limit <= now)
        (queue.shift() as Waiter).sink.queueTimeout();
    }
    this.#rearm();
  }

  #rearm(): void {
    const first = Math.min(this.#waiting[0]?.since ?? Infinity, this.#uploadsWaiting[0]?.since ?? Infinity);
    if (first === Infinity) {
      this.deadline = 0;
      this.deadlines.delete(this);
    } else {
      this.deadline = first + this.settings.queue;
    }
  }

  /** Forgets a waiting exchange (its client went away). */
  cancel(sink: ResponseSink): void {
    for (const queue of [this.#waiting, this.#uploadsWaiting]) {
      const i = queue.findIndex((w) => w.sink === sink);
      if (i >= 0) {
        queue.splice(i, 1);
        this.#rearm();
        return;
      }
    }
    for (const conn of this.#all) if (conn.sink === sink && conn.state === "connecting") conn.sink = undefined;
  }

  release(conn: UpstreamConnection): void {
    if (conn.uploading) {
      conn.uploading = false;
      this.#uploads--;
    }
    if (this.#closed) {
      conn.destroy();
      return;
    }
    const next = this.#next();
    if (next !== undefined) {
      if (next.upload) this.#holdUpload(conn);
      conn.assign(next.sink);
      return;
    }
    conn.idle();
    this.#idle.push(conn);
  }

  /** The next waiter a free connection goes to: whole requests first, then uploads within their share. */
  #next(): Waiter | undefined {
    let next = this.#waiting.shift();
    if (next === undefined && this.#uploads < this.uploadShare) next = this.#uploadsWaiting.shift();
    if (next !== undefined) this.#rearm();
    return next;
  }

  #serveUploads(): void {
    while (this.#uploadsWaiting.length > 0 && this.#uploads < this.uploadShare && !this.#closed) {
      const next = this.#uploadsWaiting[0] as Waiter;
      if (!this.#give(next.sink, true)) return;
      this.#uploadsWaiting.shift();
      this.#rearm();
    }
  }

  remove(conn: UpstreamConnection): void {
    if (!this.#all.delete(conn)) return;
    if (conn.uploading) {
      conn.uploading = false;
      this.#uploads--;
    }
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    // A slot is free: the next waiter gets a new connection.
    if (this.#closed || this.#all.size >= this.settings.connections) return;
    const next = this.#next();
    if (next === undefined) return;
    const fresh = new UpstreamConnection(this, next.sink);
    this.#all.add(fresh);
    if (next.upload) this.#holdUpload(fresh);
  }

  /** Closes idle connections; busy ones close when their response ends. */
  close(): void {
    this.#closed = true;
    for (const conn of [...this.#idle]) conn.destroy();
    const waiting = [...this.#waiting.splice(0), ...this.#uploadsWaiting.splice(0)];
    this.#rearm();
    for (const { sink } of waiting) sink.upstreamFailed(undefined, "connect", new Error(`member ${this.name} left`));
  }

  /** Destroys every connection, busy or not (the shutdown deadline). */
  destroy(): void {
    this.close();
    for (const conn of [...this.#all]) conn.destroy();
  }
}

/**
 * One pool per member, made on first use and closed when the member leaves
 * or its URL or protocol changes: the next request after such a change
 * drops the old pool's connections and gets a new pool.
 */
export class Upstreams {
  readonly #pools = new Map<string, UpstreamPool>();
  settings: PoolSettings;

  constructor(
    readonly cluster: ProxyCluster,
    settings: PoolSettings,
    readonly deadlines: Deadlines,
  ) {
    this.settings = settings;
  }

  get(name: string): UpstreamPool | undefined {
    const current = this.#pools.get(name);
    const member = this.cluster.member(name);
    if (member === undefined) return undefined;
    const protocol = protocolOf(member);
    if (current !== undefined && current.url === member.url && current.protocol === protocol) return current;
    current?.close();
    const pool = new UpstreamPool(name, member.url, this.settings, this.deadlines, protocol);
    this.#pools.set(name, pool);
    return pool;
  }

  /** New settings for every pool (a reload). */
  reconfigure(settings: PoolSettings): void {
    this.settings = settings;
    for (const pool of this.#pools.values()) pool.settings = settings;
  }

  drop(name: string): void {
    this.#pools.get(name)?.close();
    this.#pools.delete(name);
  }

  close(): void {
    for (const pool of this.#pools.values()) pool.close();
  }

  destroy(): void {
    for (const pool of this.#pools.values()) pool.destroy();
    this.#pools.clear();
  }
}
