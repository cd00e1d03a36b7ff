/**
 * HTTP/2 client sessions: nghttp2 (node:http2) does the framing, HPACK,
 * flow control and the protocol's limits (limits.ts); each stream becomes a
 * StreamExchange. Sockets come from the proxy's listener: a cleartext one
 * that opened with the h2 preface, or a TLS one that chose `h2` by ALPN.
 * A session with no open stream for `timeouts.clientIdle` gets GOAWAY, as an
 * idle HTTP/1.1 connection is closed; so does every session on shutdown,
 * its streams left to finish.
 */
import { createServer, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { ProxyConfig } from "../../config.ts";
import type { Deadlines, Timed } from "../deadlines.ts";
import { h2Limits } from "./limits.ts";
import { StreamExchange, type StreamServer } from "./stream.ts";

/** One client session and its idle deadline. */
class Session implements Timed {
  deadline = 0;
  streams = 0;

  constructor(
    readonly session: ServerHttp2Session,
    readonly address: string,
  ) {}

  expire(): void {
    if (this.streams === 0) this.session.close();
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
    const entry = new Session(session, session.socket?.remoteAddress ?? "");
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
      new StreamExchange(this.#server, stream, entry.address).start(raw);
    });
    session.once("close", () => {
      deadlines.delete(entry);
      this.#sessions.delete(entry);
      if (this.#sessions.size === 0) this.#empty();
    });
    if (this.#closing) session.close();
  }
}
