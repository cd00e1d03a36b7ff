/**
 * HTTP/2 client sessions: nghttp2 (node:http2) does the framing, HPACK,
 * flow control and the protocol's limits (limits.ts); each stream becomes a
 * StreamExchange. Sockets come from the proxy's listener: a cleartext one
 * that opened with the h2 preface, or a TLS one that chose `h2` by ALPN.
 * A session with no open stream for `timeouts.clientIdle` gets GOAWAY, as an
 * idle HTTP/1.1 connection is closed (and is destroyed a second later if the
 * client keeps it open); so does every session on shutdown, its streams left
 * to finish. A client that cancels streams faster than its ResetBudget
 * allows (rapid reset) is cut with GOAWAY ENHANCE_YOUR_CALM.
 */
import { constants, createServer, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { ProxyConfig } from "../../config.ts";
import type { Deadlines, Timed } from "../deadlines.ts";
import { h2Limits } from "./limits.ts";
import { ResetBudget } from "./resets.ts";
import { StreamExchange, type StreamServer } from "./stream.ts";

/** How long a session told to go away (idle) may stay before it is destroyed. */
const goawayLingerMs = 1_000;

/** One client session and its idle deadline. */
class Session implements Timed {
  deadline = 0;
  streams = 0;

  constructor(
    readonly session: ServerHttp2Session,
    readonly address: string,
    /** Streams the client may still cancel mid-exchange (rapid reset). */
    readonly resets: ResetBudget,
    readonly now: () => number,
  ) {}

  /**
   * Idle: GOAWAY first; a client that keeps the connection open anyway
   * (it ignores GOAWAY, or holds a header block it never finishes, which
   * nghttp2 waits for) is destroyed `goawayLingerMs` later.
   */
  expire(): void {
    if (this.streams > 0) return;
    if (this.session.closed) {
      this.session.destroy();
      return;
    }
    this.session.close();
    this.deadline = this.now() + goawayLingerMs;
  }
}

export class H2Sessions {
  readonly #server: StreamServer;
  readonly #deadlines: Deadlines;
  readonly #sessions = new Set<Session>();
  readonly #empty: () => void;
  #limits: ReturnType<typeof h2Limits>;
  #http2: Http2Server;
  #closing = false;

  /** `empty` is called whenever the last session closes (the proxy's shutdown waits for it). */
  constructor(server: StreamServer, config: ProxyConfig, deadlines: Deadlines, empty: () => void) {
    this.#server = server;
    this.#deadlines = deadlines;
    this.#empty = empty;
    this.#limits = h2Limits(config);
    this.#http2 = this.#create();
  }

  /** Client sessions open now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Starts a session on `socket` (its first bytes, the preface included, still to be read). */
  accept(socket: Socket): void {
    socket.on("error", () => {});
    this.#http2.emit("connection", socket);
  }

  /**
   * New limits for sessions that start from now on (a reload): a new http2 server, since most of its options
   * are fixed when it is made; sessions already open keep theirs.
   */
  reconfigure(config: ProxyConfig): void {
    const limits = h2Limits(config);
    if (JSON.stringify(limits) === JSON.stringify(this.#limits)) return;
    this.#limits = limits;
    this.#http2 = this.#create();
  }

  /** Shutdown: every session gets GOAWAY; streams in flight finish, then the sessions close. */
  close(): void {
    this.#closing = true;
    for (const { session } of this.#sessions) session.close();
  }

  /** The shutdown deadline: every session is cut. */
  destroy(): void {
    for (const { session } of [...this.#sessions]) session.destroy();
  }

  #create(): Http2Server {
    const limits = this.#limits;
    const http2 = createServer(limits.server);
    http2.on("session", (session: ServerHttp2Session) => this.#session(session, limits.connectionWindow));
    http2.on("sessionError", () => {});
    return http2;
  }

  #session(session: ServerHttp2Session, window: number): void {
    const entry = new Session(
      session,
      session.socket?.remoteAddress ?? "",
      new ResetBudget(this.#limits.resets, this.#deadlines.now()),
      () => this.#deadlines.now(),
    );
    this.#sessions.add(entry);
    const deadlines = this.#deadlines;
    const idleMs = this.#limits.idleMs;
    entry.deadline = deadlines.now() + idleMs;
    deadlines.add(entry);
    session.on("error", () => {});
    session.once("connect", () => {
      try {
        session.setLocalWindowSize(window);
      } catch {
        // The session closed before its first frame.
      }
    });
    session.on("stream", (stream: ServerHttp2Stream, _headers: unknown, _flags: number, raw: string[]) => {
      entry.streams++;
      entry.deadline = 0;
      stream.once("close", () => {
        entry.streams--;
        if (entry.streams === 0) entry.deadline = deadlines.now() + idleMs;
      });
      const opened = deadlines.now();
      new StreamExchange(this.#server, stream, entry.address, () => this.#cancelled(entry, opened)).start(raw);
    });
    session.once("close", () => {
      deadlines.delete(entry);
      this.#sessions.delete(entry);
      if (this.#sessions.size === 0) this.#empty();
    });
    if (this.#closing) session.close();
  }

  /**
   * The client cancelled a stream (opened at `opened`) before its exchange was over. Past the
   * budget (rapid reset, CVE-2023-44487) the session ends at once with
   * GOAWAY ENHANCE_YOUR_CALM: its streams in flight are cut, their member
   * requests dropped, and the socket closed.
   */
  #cancelled(entry: Session, opened: number): void {
    if (entry.session.destroyed || !entry.resets.cancelled(opened, this.#deadlines.now())) return;
    entry.session.destroy(new Error("too many streams cancelled"), constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }
}
