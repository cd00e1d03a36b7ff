/**
 * One client connection: requests parsed by llhttp, one at a time. A
 * pipelined request is not read until the response before it is complete,
 * so responses go out in order and a bad request is answered only after
 * every response before it, then the connection closes. Timeouts: the head
 * (408), the body between chunks (408, the member's request aborted),
 * keep-alive idle (closed quietly).
 */
import type { Socket } from "node:net";
import type { KeyConfig } from "../config.ts";
import type { Clock } from "../utils/clock.ts";
import type { Deadlines, Timed } from "./deadlines.ts";
import { type ClientSide, type EngineContext, Exchange, type RequestInfo } from "./exchange.ts";
import { awaitPartition } from "./handoff-wait.ts";
import { readRequestHead } from "./headers.ts";
import type { CompiledKey } from "./key.ts";
import { OK, PAUSED, PAUSED_UPGRADE, Parser } from "./llhttp.ts";
import type { ClientFailure } from "./observer.ts";
import { normalisedTarget, unsafePath } from "./path.ts";
import { errorResponse, messages } from "./reply.ts";
import { type Router, routeRequest } from "./route.ts";
import type { ProxyCluster } from "./upstream.ts";

/** What a client connection reads from its server; the server swaps `ctx` and `router` on reload. */
/** The framing line a chunked request goes to an HTTP/1.1 member with. */
const chunkedFraming = "transfer-encoding: chunked\r\n";

export interface ClientServer {
  ctx: EngineContext;
  router: Router;
  key: CompiledKey;
  keyConfig: KeyConfig;
  cluster: ProxyCluster;
  deadlines: Deadlines;
  /** Timers for requests waiting on a partition in hand-off. */
  clock: Clock;
  /** Shutting down: every response closes its connection. */
  closing: boolean;
  /** Sockets closed on our side after an answer, waiting a moment for the client's FIN (destroyed on shutdown). */
  lingering: Set<Socket>;
  tls: boolean;
  connectionClosed(conn: ClientConnection): void;
}

type State = "idle" | "head" | "body" | "waiting" | "tunnel" | "closed";

/** How long a socket we closed after answering waits for the client's FIN before it is destroyed. */
const lingerMs = 5_000;

export class ClientConnection implements ClientSide, Timed {
  readonly socket: Socket;
  readonly address: string;
  readonly #server: ClientServer;
  readonly #parser: Parser;
  state: State = "idle";
  deadline = 0;
  #exchange: Exchange | undefined;
  /** Bytes received while a response was in progress, parsed once it is complete. */
  #stash: Buffer | undefined;
  #keepAlive = true;
  /** Bytes of the next request seen (a connection that sent nothing is closed quietly). */
  #started = false;
  #bodyPaused = false;
  /** The client is not taking response bytes: the deadline is `timeouts.clientWrite`'s. */
  #writeStalled = false;
  /** The member a request just parsed goes to, once the rest of its read is parsed. */
  #dispatch: string | undefined;
  /** The partition a request just parsed waits for (no member holds it ready), or -1. */
  #waitFor = -1;
  #cancelWait: (() => void) | undefined;

  constructor(socket: Socket, server: ClientServer) {
    this.socket = socket;
    this.#server = server;
    this.address = socket.remoteAddress ?? "";
    this.#parser = new Parser("request", server.ctx.config.limits);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#data(chunk));
    socket.on("drain", () => {
      this.writeStalled(false);
      this.#exchange?.clientDrained();
    });
    socket.on("error", () => {});
    socket.on("close", () => this.#closed());
    socket.on("end", () => this.#ended());
    this.deadline = server.deadlines.now() + server.ctx.config.timeouts.head;
    server.deadlines.add(this);
  }

  get closeAfter(): boolean {
    return !this.#keepAlive || this.#server.closing;
  }

  write(data: Buffer | string): boolean {
    if (this.state === "closed") return true;
    return typeof data === "string" ? this.socket.write(data, "latin1") : this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
    this.#closed();
  }

  pauseBody(paused: boolean): void {
    if (paused === this.#bodyPaused) return;
    this.#bodyPaused = paused;
    if (paused) this.socket.pause();
    else if (this.#stash === undefined) this.socket.resume();
    // The client waits on the member (or a free connection) meanwhile: its body deadline does not run.
    if (this.state === "body" && !this.#writeStalled) {
      this.deadline = paused ? 0 : this.#server.deadlines.now() + this.#server.ctx.config.timeouts.body;
    }
  }

  writeStalled(stalled: boolean): void {
    if (stalled === this.#writeStalled || this.state === "closed" || this.state === "tunnel") return;
    this.#writeStalled = stalled;
    const server = this.#server;
    const now = server.deadlines.now();
    const timeouts = server.ctx.config.timeouts;
    if (stalled) this.deadline = now + timeouts.clientWrite;
    else if (this.state === "body") this.deadline = this.#bodyPaused ? 0 : now + timeouts.body;
    else if (this.state === "idle") this.deadline = now + (server.closing ? 250 : timeouts.clientIdle);
    else if (this.state === "head") this.deadline = now + timeouts.head;
    else this.deadline = 0;
  }

  /** Shutdown: close now if between requests; otherwise after the response in progress. */
  shutdown(): void {
    if (this.state === "idle" && !this.#started) {
      // Idle keep-alive connection: give a request already on its way a moment, then close.
      this.deadline = Math.min(this.deadline || Number.MAX_SAFE_INTEGER, this.#server.deadlines.now() + 250);
    }
  }

  expire(): void {
    if (this.#writeStalled) {
      // The client stopped reading its response for `timeouts.clientWrite`: its fault, the member's is intact.
      this.#clientError("slow_reader");
      this.#exchange?.abort("slow_reader");
      this.destroy();
      return;
    }
    switch (this.state) {
      case "idle":
        if (this.#started) {
          this.#clientError("head_timeout");
          this.#fail(408, "request_timeout");
        } else {
          // Deadlines fire from a timer, before this turn's poll has read what clients sent: a request
          // already in the socket's buffer would be cut with its connection. Close after the poll
          // (setImmediate runs after it), and only if nothing of a next request arrived meanwhile.
          setImmediate(() => {
            if (this.state === "idle" && !this.#started) this.#end();
          });
        }
        return;
      case "head":
        this.#clientError("head_timeout");
        this.#fail(408, "request_timeout");
        return;
      case "body": {
        // The body stalled: the member's request is aborted (its connection freed), not retried.
        this.#clientError("body_timeout");
        const exchange = this.#exchange;
        if (exchange !== undefined) {
          exchange.abort("body_timeout");
          if (!exchange.responseStarted) {
            this.#exchange = undefined;
            this.#fail(408, "request_timeout");
            return;
          }
        }
        this.destroy();
        return;
      }
      default:
    }
  }

  #clientError(reason: ClientFailure): void {
    this.#server.ctx.observer?.clientError?.(reason);
  }

  #data(chunk: Buffer): void {
    if (this.state === "closed") return;
    const exchange = this.#exchange;
    if (exchange?.requestDone) {
      // A pipelined request: kept until the response before it is complete.
      this.#stash = this.#stash === undefined ? chunk : Buffer.concat([this.#stash, chunk]);
      this.socket.pause();
      return;
    }
    this.#feed(chunk);
  }

  #feed(data: Buffer): void {
    this.#parse(data);
    // The member hears of a request only after the bytes received with its head were parsed: framing that
    // fails in the same read never reaches it.
    const member = this.#dispatch;
    const waitFor = this.#waitFor;
    if (member === undefined && waitFor < 0) return;
    this.#dispatch = undefined;
    this.#waitFor = -1;
    const exchange = this.#exchange;
    if (exchange === undefined || this.state === "closed") return;
    if (member !== undefined) exchange.send(member);
    else this.#await(exchange, waitFor);
  }

  /** Coordinated hand-offs: no member holds the request's partition ready; it waits (handoff-wait.ts). */
  #await(exchange: Exchange, partition: number): void {
    const server = this.#server;
    this.#cancelWait = awaitPartition(
      server.cluster,
      server.clock,
      () => server.ctx.ejections,
      partition,
      (result) => {
        this.#cancelWait = undefined;
        if (this.#exchange !== exchange || this.state === "closed") return;
        if ("member" in result) {
          exchange.request.routing = result.routing;
          exchange.send(result.member);
        } else if ("moving" in result) {
          exchange.reply(503, "partition_moving", { headers: `retry-after: ${result.retryAfter}\r\n` });
        } else exchange.reply(result.status, result.error, { message: result.message, extra: result.details });
      },
    );
  }

  #parse(data: Buffer): void {
    const parser = this.#parser;
    const server = this.#server;
    let start = 0;
    for (;;) {
      if (this.state === "idle") {
        if (start === data.length) return;
        this.state = "head";
        this.#started = true;
        this.deadline = server.deadlines.now() + server.ctx.config.timeouts.head;
      }
      const inBody = this.state === "body";
      const code = parser.execute(data, start);
      const pos = parser.pos;
      if (code !== OK && code !== PAUSED && code !== PAUSED_UPGRADE) {
        this.#parseError();
        return;
      }
      if (inBody && pos > start) {
        // Re-armed only while the body flows: paused, the client waits on the member, which is timed instead.
        if (!this.#bodyPaused && !this.#writeStalled)
          this.deadline = server.deadlines.now() + server.ctx.config.timeouts.body;
        const spans = parser.spans;
        if (!parser.decode) this.#exchange?.clientBody(data, start, pos);
        else {
          // De-chunked for an h2c member: llhttp's decoded spans, the chunk framing left out.
          for (let i = 0; i < spans.length; i += 2)
            this.#exchange?.clientBody(data, spans[i] as number, spans[i + 1] as number);
          spans.length = 0;
        }
      }
      if (code === OK) return;
      start = pos;
      if (code === PAUSED_UPGRADE) {
        this.#stash = start < data.length ? data.subarray(start) : undefined;
        this.socket.pause();
        return;
      }
      if (parser.headReady) {
        parser.headReady = false;
        this.#head();
        if (this.state === "closed") return;
      }
      if (parser.done) {
        parser.done = false;
        const exchange = this.#exchange;
        this.state = "waiting";
        this.deadline = 0;
        if (exchange !== undefined && !exchange.responseDone) {
          exchange.clientRequestDone();
          if (this.#exchange === exchange && !exchange.responseDone) {
            // Wait for the response. Bytes already here (a pipelined request) are kept and reading stops until
            // the response is complete. Otherwise the socket keeps reading: nearly every client sends nothing
            // more meanwhile, and a pause and resume per request cost two epoll changes and a tick of stream
            // machinery. Whatever does arrive is stashed by #data, which stops reading then: one read at most.
            if (start < data.length) {
              this.#stash = data.subarray(start);
              this.socket.pause();
            }
            return;
          }
        }
        if (this.#next()) return;
      }
    }
  }

  /** A request head is complete: check it, route it, start its exchange (or answer it here). */
  #head(): void {
    const server = this.#server;
    const ctx = server.ctx;
    const parser = this.#parser;
    const started = performance.now();
    const method = parser.method;
    const major = parser.versionMajor;
    const minor = parser.versionMinor;
    this.#keepAlive = parser.keepAlive;
    parser.decode = false;
    ctx.observer?.requestStarted?.();
    const head = readRequestHead(
      parser.names,
      parser.values,
      ctx.config.headers.forwarded,
      this.address,
      server.tls ? "https" : "http",
      minor === 0,
    );
    const target = parser.target;
    const info: RequestInfo = {
      method,
      target,
      memberTarget: "",
      head,
      framing: "",
      hasBody: false,
      http10: minor === 0,
      // An HTTP/1.0 client's Upgrade is ignored (RFC 9110 §7.8): its request goes on as a plain one.
      upgrade: parser.upgrade && minor === 1,
      routing: server.cluster.routing,
      partition: -1,
      started,
      decoded: false,
    };
    if (major !== 1 || minor > 1) {
      this.#local(info, 400, "bad_request");
      return;
    }
    if (method === "CONNECT") {
      this.#local(info, 405, "method_not_allowed");
      return;
    }
    if (head.hosts > 1 || (head.hosts === 0 && minor === 1)) {
      this.#local(info, 400, "bad_request");
      return;
    }
    if (head.transferEncoding !== undefined) {
      if (head.transferEncodings > 1 || head.transferEncoding.trim().toLowerCase() !== "chunked") {
        this.#local(info, 400, "bad_request");
        return;
      }
      info.framing = chunkedFraming;
      info.hasBody = true;
    } else if (head.contentLength !== undefined) {
      info.framing = `content-length: ${head.contentLength}\r\n`;
      info.hasBody = !/^0+$/.test(head.contentLength);
    }
    if (target === "*" ? method !== "OPTIONS" : target.charCodeAt(0) !== 47 && !/^https?:\/\//i.test(target)) {
      this.#local(info, 400, "bad_request");
      return;
    }
    // One form for both: the key is read from what the member will receive.
    const cleaned = normalisedTarget(target);
    if (cleaned === unsafePath) {
      this.#local(info, 400, "bad_path");
      return;
    }
    info.memberTarget = cleaned;
    const route = routeRequest(
      { url: cleaned, names: parser.names, values: parser.values },
      info.routing,
      server.router,
    );
    if ("status" in route) {
      this.#local(info, route.status, route.error, { message: route.message, ...route.details });
      return;
    }
    info.partition = route.partition;
    // An h2c member takes the body without chunk framing (HTTP/2 has its own): llhttp hands over the decoded
    // bytes. A request that waits for its partition may end at one if the ring has any.
    if (
      info.framing === chunkedFraming &&
      ("wait" in route
        ? info.routing.ring.members.some((name) => server.cluster.member(name)?.protocol === "h2c")
        : ctx.upstreams.get(route.member)?.protocol === "h2c")
    ) {
      parser.decode = true;
      info.decoded = true;
    }
    const exchange = new Exchange(ctx, this, info);
    this.#exchange = exchange;
    this.state = "body";
    this.deadline = info.hasBody ? server.deadlines.now() + ctx.config.timeouts.body : 0;
    if ("wait" in route) this.#waitFor = route.partition;
    else this.#dispatch = route.member;
  }

  /** Answers a request here: a refusal. Its body, if any, is not read: the connection closes after. */
  #local(info: RequestInfo, status: number, error: string, extra?: Record<string, unknown>): void {
    const exchange = new Exchange(this.#server.ctx, this, info);
    this.#exchange = exchange;
    this.state = "body";
    this.deadline = 0;
    if (info.hasBody || info.upgrade || status === 405 || error === "bad_request") this.#keepAlive = false;
    exchange.reply(status, error, { extra });
  }

  /** The response is complete; `exchange` is over. */
  exchangeDone(exchange: Exchange): void {
    if (exchange !== this.#exchange) return;
    if (!exchange.requestDone) {
      // Answered before the request ended: the request's end comes through #feed, unless the connection closes now.
      if (exchange.closeAfter || this.closeAfter) {
        this.#exchange = undefined;
        this.#end();
      }
      return;
    }
    if (this.#next()) return;
    const stash = this.#stash;
    this.#stash = undefined;
    if (!this.#bodyPaused) this.socket.resume();
    if (stash !== undefined) this.#feed(stash);
  }

  /** Between requests. Returns true when the connection closed instead. */
  #next(): boolean {
    const exchange = this.#exchange;
    this.#exchange = undefined;
    if (exchange?.closeAfter || this.closeAfter) {
      this.#end();
      return true;
    }
    this.state = "idle";
    this.#started = false;
    const server = this.#server;
    const idle = server.closing ? 250 : server.ctx.config.timeouts.clientIdle;
    // A response still waiting in the socket for a client that is not reading keeps the write deadline.
    this.deadline = server.deadlines.now() + (this.#writeStalled ? server.ctx.config.timeouts.clientWrite : idle);
    return false;
  }

  takeTunnel(): { socket: Socket; rest: Buffer | undefined } {
    const rest = this.#stash;
    this.#stash = undefined;
    this.state = "tunnel";
    this.deadline = 0;
    this.#exchange = undefined;
    this.#server.deadlines.delete(this);
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("drain");
    this.socket.removeAllListeners("end");
    this.#parser.free();
    this.#server.connectionClosed(this);
    return { socket: this.socket, rest };
  }

  /** A request llhttp refused: answered after any response in progress, then the connection closes. */
  #parseError(): void {
    const parser = this.#parser;
    const exceeded = parser.exceeded;
    const [status, error] =
      exceeded === "url"
        ? [414, "uri_too_long"]
        : exceeded === "headers" || exceeded === "headerBytes"
          ? [431, "headers_too_large"]
          : [400, "bad_request"];
    this.#waitFor = -1;
    this.#server.ctx.logger.debug({ client: this.address, reason: parser.errorReason(), status }, "bad request");
    this.#dispatch = undefined;
    this.#clientError("bad_request");
    const exchange = this.#exchange;
    if (exchange !== undefined) {
      // Bad framing inside a body being forwarded: the member's request is cut, never completed.
      exchange.abort("bad_request");
      this.#exchange = undefined;
      if (exchange.responseStarted) {
        this.destroy();
        return;
      }
    }
    this.#fail(status, error);
  }

  /** Answers with one of ringroute's errors (no request to attach it to), then closes. */
  #fail(status: number, error: string): void {
    if (this.state === "closed") return;
    this.write(errorResponse(status, { error, message: messages[error] ?? error }, true));
    this.#end();
  }

  #end(): void {
    if (this.state === "closed") return;
    this.socket.end();
    this.#closed();
    this.#linger();
  }

  /**
   * After our FIN, the client's remaining bytes are read and dropped until it closes too, for at most
   * `lingerMs` (nginx's lingering close): a client that never closes does not keep the descriptor.
   */
  #linger(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    const server = this.#server;
    const deadlines = server.deadlines;
    server.lingering.add(socket);
    // The wait starts once our last bytes left (a slow reader still gets its response, within clientWrite).
    const linger: Timed = { deadline: 0, expire: () => socket.destroy() };
    const arm = () => {
      linger.deadline = deadlines.now() + lingerMs;
    };
    if (socket.writableFinished) arm();
    else {
      linger.deadline = deadlines.now() + server.ctx.config.timeouts.clientWrite;
      socket.once("finish", arm);
    }
    deadlines.add(linger);
    socket.removeAllListeners("data");
    socket.on("data", () => {});
    socket.once("end", () => socket.destroy());
    socket.once("close", () => {
      deadlines.delete(linger);
      server.lingering.delete(socket);
    });
    socket.resume();
  }

  #ended(): void {
    // The client finished sending; a response in progress still goes out (half-close), then the connection closes.
    this.#keepAlive = false;
    const exchange = this.#exchange;
    if (exchange === undefined) {
      if (this.state !== "tunnel") this.#end();
      return;
    }
    if (this.state === "body" && !exchange.requestDone) {
      // FIN in the middle of a request: it can never be whole. The member's connection is freed now.
      this.#clientError("aborted");
      exchange.abort("aborted");
      this.destroy();
    }
  }

  #closed(): void {
    if (this.state === "closed" || this.state === "tunnel") return;
    this.state = "closed";
    this.deadline = 0;
    this.#server.deadlines.delete(this);
    this.#cancelWait?.();
    this.#cancelWait = undefined;
    const exchange = this.#exchange;
    this.#exchange = undefined;
    if (exchange?.abort("aborted")) this.#clientError("aborted");
    this.#parser.free();
    this.#server.connectionClosed(this);
  }
}
