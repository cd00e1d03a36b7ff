/**
 * Member connections: a pool per member (keep-alive, one request at a time
 * on each connection, at most `proxy.connections`, waiters queued), each
 * connection a raw socket whose responses llhttp parses. Response bodies go
 * to the exchange as slices of the received buffers, framing included.
 */
import { connect, type Socket } from "node:net";
import type { RoutingTable } from "../handoff/table.ts";
import type { Member } from "../membership/source.ts";
import type { Deadlines, Timed } from "./deadlines.ts";
import { OK, PAUSED, Parser } from "./llhttp.ts";
import type { UpstreamFailure } from "./observer.ts";

/** What the proxy needs of a cluster; `Cluster` satisfies it, and so can a worker's own view. */
export interface ProxyCluster {
  /** The table requests are routed by. */
  readonly routing: RoutingTable;
  /** Milliseconds a request waits for a partition no member holds ready (coordinated hand-offs); default 2000. */
  readonly handoffWait?: number | undefined;
  member(name: string): Member | undefined;
  listen(listener: { memberDown?(member: Member): void }): () => void;
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
}

export interface PoolSettings {
  connections: number;
  connect: number;
  response: number;
  keepAlive: number;
}

const connectCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);

type State = "connecting" | "busy" | "idle" | "closed";

export class UpstreamConnection implements Timed {
  readonly socket: Socket;
  readonly pool: UpstreamPool;
  readonly parser = new Parser("response");
  sink: ResponseSink | undefined;
  state: State = "connecting";
  deadline = 0;
  /** Whether the response head went on to the client: a failure now truncates it. */
  responding = false;
  /** Whether a request was already answered on this connection (a reused one may be stale). */
  reused = false;
  #inBody = false;
  #reusable = true;

  constructor(pool: UpstreamPool, sink: ResponseSink) {
    this.pool = pool;
    this.sink = sink;
    const socket = connect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = socket;
    this.deadline = pool.deadlines.now() + pool.settings.connect;
    pool.deadlines.add(this);
    socket.on("connect", () => this.#connected());
    socket.on("data", (chunk: Buffer) => this.#data(chunk));
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
    this.deadline = 0;
    sink.upstreamReady(this);
  }

  write(data: Buffer | string): boolean {
    return typeof data === "string" ? this.socket.write(data, "latin1") : this.socket.write(data);
  }

  /** Starts (or restarts) the wait for the member's next bytes. */
  armResponse(): void {
    this.deadline = this.pool.deadlines.now() + this.pool.settings.response;
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

  /** Takes the socket out of the pool for an Upgrade tunnel; the parser is done with it. */
  detach(): Socket {
    this.sink = undefined;
    this.#close();
    this.socket.removeAllListeners("data");
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

  #data(chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined || this.state !== "busy") {
      // Bytes nobody asked for (on an idle connection): it cannot be trusted for another request.
      this.destroy();
      return;
    }
    if (this.deadline !== 0) this.armResponse();
    const parser = this.parser;
    sink.batch(true);
    let start = 0;
    for (;;) {
      const inBody = this.#inBody;
      const code = parser.execute(chunk, start);
      const pos = parser.pos;
      if (code !== OK && code !== PAUSED) {
        sink.batch(false);
        this.#fail("error", new Error(`member sent invalid HTTP: ${parser.errorReason()}`));
        return;
      }
      if (inBody && pos > start && parser.onBody === undefined) sink.upstreamBody(chunk, start, pos);
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
    this.parser.onBody = undefined;
    if (reusable && this.#reusable) this.pool.release(this);
    else this.destroy();
    sink.upstreamDone(this);
  }

  /** The exchange will not reuse this connection (the request was cut short). */
  noReuse(): void {
    this.#reusable = false;
  }

  #ended(): void {
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
    if (this.state === "connecting" || connectCodes.has(code)) this.#fail("connect", error);
    else this.#fail("reset", error);
  }

  #closed(): void {
    if (this.state === "closed") return;
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

/** One member's connections. */
export class UpstreamPool {
  readonly name: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The member URL's path, without a trailing slash, put before every request path ("" for none). */
  readonly prefix: string;
  settings: PoolSettings;
  readonly deadlines: Deadlines;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  readonly #waiting: ResponseSink[] = [];
  #closed = false;

  constructor(name: string, url: string, settings: PoolSettings, deadlines: Deadlines) {
    const parsed = new URL(url);
    this.name = name;
    this.url = url;
    this.host = parsed.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
    this.prefix = parsed.pathname.replace(/\/+$/, "");
    this.settings = settings;
    this.deadlines = deadlines;
  }

  /** Gives `sink` a connection now (idle or new) or once one is free. */
  acquire(sink: ResponseSink): void {
    const idle = this.#idle.pop();
    if (idle !== undefined) {
      idle.assign(sink);
      return;
    }
    if (this.#all.size < this.settings.connections && !this.#closed) {
      this.#all.add(new UpstreamConnection(this, sink));
      return;
    }
    this.#waiting.push(sink);
  }

  /** Forgets a waiting exchange (its client went away). */
  cancel(sink: ResponseSink): void {
    const i = this.#waiting.indexOf(sink);
    if (i >= 0) this.#waiting.splice(i, 1);
    else for (const conn of this.#all) if (conn.sink === sink && conn.state === "connecting") conn.sink = undefined;
  }

  release(conn: UpstreamConnection): void {
    if (this.#closed) {
      conn.destroy();
      return;
    }
    const next = this.#waiting.shift();
    if (next !== undefined) {
      conn.assign(next);
      return;
    }
    conn.idle();
    this.#idle.push(conn);
  }

  remove(conn: UpstreamConnection): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    // A slot is free: the next waiter gets a new connection.
    if (this.#waiting.length > 0 && !this.#closed && this.#all.size < this.settings.connections) {
      const next = this.#waiting.shift() as ResponseSink;
      this.#all.add(new UpstreamConnection(this, next));
    }
  }

  /** Closes idle connections; busy ones close when their response ends. */
  close(): void {
    this.#closed = true;
    for (const conn of [...this.#idle]) conn.destroy();
    const waiting = this.#waiting.splice(0);
    for (const sink of waiting) sink.upstreamFailed(undefined, "connect", new Error(`member ${this.name} left`));
  }

  /** Destroys every connection, busy or not (the shutdown deadline). */
  destroy(): void {
    this.close();
    for (const conn of [...this.#all]) conn.destroy();
  }
}

/** One pool per member, made on first use and closed when the member leaves or its URL changes. */
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
    if (current !== undefined && current.url === member.url) return current;
    current?.close();
    const pool = new UpstreamPool(name, member.url, this.settings, this.deadlines);
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
