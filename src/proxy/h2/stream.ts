/**
 * One HTTP/2 stream's exchange: orchestration only. The request goes
 * through the same rules as an HTTP/1.1 request: path normalisation
 * (path.ts), the header rules (headers.ts), key extraction and routing
 * (route.ts), the hand-off wait (handoff-wait.ts), the retry policy
 * (retry.ts's `decide`), ejection, the observer and the access log. A
 * member is reached through a MemberTransport (transport.ts): HTTP/1.1 or
 * h2c; framing is theirs. ringroute's own errors are JSON for HTTP clients
 * and trailers-only responses for gRPC calls (grpc.ts).
 */
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { Clock } from "../../utils/clock.ts";
import type { Timed } from "../deadlines.ts";
import type { EngineContext } from "../exchange.ts";
import { nextChoice } from "../failover.ts";
import { awaitPartition } from "../handoff-wait.ts";
import { readRequestHead } from "../headers.ts";
import { type AccessRecord, type ClientFailure, clientFailureReason } from "../observer.ts";
import { normalisedTarget, unsafePath } from "../path.ts";
import { errorBody } from "../reply.ts";
import { type BodyState, decide, type Forward, type Reply } from "../retry.ts";
import { ownershipHeaders, type Router, routeRequest, sendsOwnership } from "../route.ts";
import type { ProxyCluster } from "../upstream.ts";
import { h2Headers, headerList, readStreamRequest, requestTrailers } from "./framing.ts";
import { grpcMessage, grpcStatusOf, grpcTimeoutMs, isGrpc } from "./grpc.ts";
import {
  AttemptSink,
  type HeaderList,
  type MemberCall,
  type MemberFailure,
  type MemberRequest,
  type MemberTransport,
  outcomeOf,
} from "./transport.ts";

/** What a stream reads from its server; `ctx` and `router` are swapped on reload. */
export interface StreamServer {
  ctx: EngineContext;
  router: Router;
  cluster: ProxyCluster;
  clock: Clock;
  tls: boolean;
  /** The transport for a member (by its `protocol`). */
  transport(member: string): MemberTransport;
}

/**
 * The session's count of streams that hold a member call while the client takes none of their response
 * (limits.ts, `stalled`): past its cap a stall is cut after a short grace instead of `timeouts.clientWrite`.
 */
export interface StallHolds {
  /** One more stream stalled holding its member call; false when that puts the session past its cap. */
  hold(): boolean;
  release(): void;
  /** How long a stall past the cap may last. */
  readonly graceMs: number;
}

/** Body bytes kept for a resend (a whole body at most this big can go to the next member). */
const keepLimit = 64 * 1024;

export class StreamExchange implements Timed {
  /** The client's stall deadline (a body that stopped, a response not read), swept by `Deadlines`. */
  deadline = 0;
  readonly #server: StreamServer;
  readonly #ctx: EngineContext;
  readonly #stream: ServerHttp2Stream;
  readonly #client: string;
  readonly #started = performance.now();
  #method = "";
  #target = "";
  #grpc = false;
  #hasBody = false;
  #request: MemberRequest | undefined;
  #routing = undefined as unknown as ProxyCluster["routing"];
  #partition = -1;
  readonly #tried: string[] = [];
  #member = "none";
  #call: MemberCall | undefined;
  #attempt: AttemptSink | undefined;
  /** Body chunks not yet given to a call. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The whole body so far, while it is small enough to resend. */
  #kept: Buffer[] | undefined = [];
  #keptBytes = 0;
  #sentAny = false;
  #bodyPaused = false;
  #writeStalled = false;
  #requestDone = false;
  #responseStarted = false;
  #responseDone = false;
  #failedStatus = false;
  #trailers: OutgoingHttpHeaders | undefined;
  /** The client's trailer fields, if its body ended with a trailing HEADERS. */
  #requestTrailers: HeaderList | undefined;
  #status = 0;
  /** The response body's length when it ends the stream with no trailers (-1: not known, or trailers may follow). */
  #bodyLength = -1;
  #bytesIn = 0;
  #bytesOut = 0;
  #upstreamStarted = 0;
  #outcome: string | undefined;
  #reason: string | undefined;
  #truncated = false;
  #ended = false;
  #cancelWait: (() => void) | undefined;
  #cancelDeadline: (() => void) | undefined;

  readonly #cancelled: (() => void) | undefined;
  readonly #holds: StallHolds | undefined;
  /** Counted in the session's StallHolds; `#overCap`: past its cap. */
  #holding = false;
  #overCap = false;

  /**
   * `cancelled` hears of a stream the client reset (or lost) before the exchange was over: the session counts them.
   * `holds` counts the session's streams stalled on the client while holding a member call.
   */
  constructor(
    server: StreamServer,
    stream: ServerHttp2Stream,
    client: string,
    cancelled?: () => void,
    holds?: StallHolds,
  ) {
    this.#server = server;
    this.#ctx = server.ctx;
    this.#stream = stream;
    this.#client = client;
    this.#cancelled = cancelled;
    this.#holds = holds;
  }

  /** Reads the request head, routes it and starts the first attempt (or answers it here). */
  start(raw: readonly string[]): void {
    const ctx = this.#ctx;
    const server = this.#server;
    const stream = this.#stream;
    ctx.observer?.requestStarted?.();
    const req = readStreamRequest(raw);
    this.#method = req.method;
    this.#target = req.path;
    this.#grpc = isGrpc(req.contentType);
    this.#hasBody = !stream.endAfterHeaders;
    this.#requestDone = !this.#hasBody;
    stream.on("error", () => {});
    stream.on("close", () => this.#closed());
    stream.on("drain", () => this.#clientDrained());
    stream.on("wantTrailers", () => {
      try {
        stream.sendTrailers(this.#trailers ?? {});
      } catch {
        // A trailer field HTTP/2 does not allow: the stream ends short instead.
        stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      }
    });
    // Our side ended before the client's (an early answer, a refusal): the rest of its body is not wanted.
    stream.on("finish", () => {
      if (!this.#requestDone && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
    });
    if (this.#hasBody) {
      // A trailing HEADERS comes before the body's end: the member gets it with the end (transport.ts).
      stream.on("trailers", (headers: IncomingHttpHeaders) => (this.#requestTrailers = requestTrailers(headers)));
      stream.on("data", (chunk: Buffer) => this.#body(chunk));
      stream.on("end", () => this.#bodyEnd());
    }
    this.#routing = server.cluster.routing;
    ctx.deadlines.add(this);
    this.#armBody();

    const method = req.method;
    if (method === "CONNECT") {
      this.reply(405, "method_not_allowed");
      return;
    }
    const target = req.path;
    if (target === "*" ? method !== "OPTIONS" : target.charCodeAt(0) !== 47) {
      this.reply(400, "bad_request");
      return;
    }
    const cleaned = normalisedTarget(target);
    if (cleaned === unsafePath) {
      this.reply(400, "bad_path");
      return;
    }
    const scheme = server.tls ? "https" : "http";
    const head = readRequestHead(req.names, req.values, ctx.config.headers.forwarded, this.#client, scheme);
    const timeout = this.#grpc ? grpcTimeoutMs(req.grpcTimeout) : undefined;
    const contentLength = req.contentLength === undefined ? undefined : Number(req.contentLength);
    this.#request = {
      method,
      path: cleaned,
      authority: req.authority,
      scheme,
      headers: headerList(head.lines),
      teTrailers: req.teTrailers,
      hasBody: this.#hasBody,
      contentLength,
      deadline: timeout === undefined ? 0 : server.clock.now() + timeout,
    };
    if (timeout !== undefined) this.#cancelDeadline = server.clock.setTimer(() => this.#deadlineExceeded(), timeout);
    const route = routeRequest({ url: cleaned, names: req.names, values: req.values }, this.#routing, server.router);
    if ("status" in route) {
      this.reply(route.status, route.error, { message: route.message, extra: route.details });
      return;
    }
    this.#partition = route.partition;
    if ("member" in route) {
      this.#send(route.member);
      return;
    }
    this.#cancelWait = awaitPartition(
      server.cluster,
      server.clock,
      () => server.ctx.ejections,
      route.partition,
      (result) => {
        this.#cancelWait = undefined;
        if (this.#ended) return;
        if ("member" in result) {
          this.#routing = result.routing;
          this.#send(result.member);
        } else if ("moving" in result) this.reply(503, "partition_moving", { retryAfter: result.retryAfter });
        else this.reply(result.status, result.error, { message: result.message, extra: result.details });
      },
    );
  }

  /** Sends the request to `member`, with the body received so far. */
  #send(member: string): void {
    const request = this.#request as MemberRequest;
    this.#tried.push(member);
    this.#member = member;
    let headers = request.headers;
    if (sendsOwnership(this.#ctx.config.headers.ownership, this.#routing)) {
      const ownership = headerList(ownershipHeaders(this.#routing, this.#partition, member));
      headers = {
        names: [...headers.names, ...ownership.names],
        values: [...headers.values, ...ownership.values],
      };
    }
    const attempt = new AttemptSink(this, this);
    this.#attempt = attempt;
    const call = this.#server.transport(member).open(member, { ...request, headers }, attempt);
    if (this.#attempt !== attempt) return;
    this.#call = call;
    // A first attempt gets what arrived meanwhile; a resend gets the whole body kept (decide() allowed it).
    const chunks = this.#sentAny ? (this.#kept ?? []) : this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    let flowing = true;
    for (const chunk of chunks) flowing = call.write(chunk);
    if (chunks.length > 0) this.#sentAny = true;
    if (this.#requestDone) call.end(this.#requestTrailers);
    else this.#pauseBody(!flowing);
  }

  #body(chunk: Buffer): void {
    if (this.#ended && this.#responseDone) return;
    this.#bytesIn += chunk.length;
    if (this.#kept !== undefined) {
      this.#keptBytes += chunk.length;
      if (this.#keptBytes <= keepLimit) this.#kept.push(chunk);
      else this.#kept = undefined;
    }
    this.#armBody();
    const call = this.#call;
    if (call !== undefined) {
      this.#sentAny = true;
      if (!call.write(chunk)) this.#pauseBody(true);
      return;
    }
    if (this.#responseStarted) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes > keepLimit) this.#pauseBody(true);
  }

  #bodyEnd(): void {
    this.#requestDone = true;
    if (!this.#writeStalled) this.deadline = 0;
    this.#call?.end(this.#requestTrailers);
  }

  #pauseBody(paused: boolean): void {
    if (paused === this.#bodyPaused) return;
    this.#bodyPaused = paused;
    // Not read, not acknowledged: the client's flow-control window closes, and it waits.
    if (paused) this.#stream.pause();
    else this.#stream.resume();
    this.#armBody();
  }

  /** The body deadline runs while the client owes body bytes and nothing is waiting on the member. */
  #armBody(): void {
    if (this.#writeStalled) return;
    this.deadline =
      this.#requestDone || this.#bodyPaused ? 0 : this.#ctx.deadlines.now() + this.#ctx.config.timeouts.body;
  }

  expire(): void {
    if (this.#writeStalled) {
      // The client took no response bytes for `timeouts.clientWrite`: its fault, the member's is intact. Also
      // after the member's part ended: what the client does not read is not kept for it.
      if (!this.#ended) this.#clientFailed("slow_reader");
      if (!this.#stream.closed) this.#stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    if (this.#ended || this.#requestDone || this.#bodyPaused) return;
    // The body stalled: the member's request is cut (not retried), the client gets 408 if nothing went out yet.
    if (this.#responseStarted) {
      this.#clientFailed("body_timeout");
      this.#stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    this.#ctx.observer?.clientError?.("body_timeout");
    this.#dropCall();
    this.#outcome = "body_timeout";
    this.reply(408, "request_timeout");
  }

  /** The call's deadline (grpc-timeout) passed. */
  #deadlineExceeded(): void {
    this.#cancelDeadline = undefined;
    if (this.#ended) return;
    this.#dropCall();
    this.#outcome = "deadline";
    this.reply(504, "deadline_exceeded");
  }

  #dropCall(): void {
    this.#releaseHold();
    this.#cancelWait?.();
    this.#cancelWait = undefined;
    this.#attempt = undefined;
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
  }

  // What the member's call reports (through its Attempt, so a dropped call is not heard).

  ready(): void {
    if (this.#upstreamStarted === 0) this.#upstreamStarted = performance.now();
  }

  headers(status: number, headers: HeaderList, last: boolean): void {
    const ctx = this.#ctx;
    if (ctx.policy.statuses[status] === 1) {
      const member = this.#member;
      const decision = decide(ctx.policy, {
        outcome: { kind: "status", status },
        method: this.#method,
        body: this.#bodyState(),
        tried: this.#tried.length,
        responseStarted: false,
        grpcMethod: this.#grpcMethod(),
      });
      this.#failedStatus = decision.eject;
      if (decision.reason !== undefined) {
        ctx.observer?.upstreamError(member, decision.reason);
        this.#outcome = "upstream_status";
      }
      if (decision.eject && ctx.ejections.failure(member)) ctx.observer?.ejection(member);
      const next = decision.action === "retry" ? this.#next() : undefined;
      if (next !== undefined) {
        // The member's answer is dropped with its call; the next member gets the request.
        this.#dropCall();
        this.#sendNext(next);
        return;
      }
    }
    const out = h2Headers(headers, { ":status": status });
    if (ctx.config.headers.ringInfo) {
      if (this.#partition >= 0) out["x-ringroute-partition"] = String(this.#partition);
      out["x-ringroute-member"] = this.#member;
    }
    const trailers = !last && this.#wantsTrailers(out);
    if (!trailers && !last) {
      const length = out["content-length"];
      if (length !== undefined) this.#bodyLength = Number(length);
    }
    if (!this.#respond(out, last ? "none" : trailers ? "trailers" : "plain")) {
      // A head Node refuses to send (a field value HTTP/2 does not allow): the member's response is unusable.
      const member = this.#member;
      this.#dropCall();
      ctx.observer?.upstreamError(member, "bad_response");
      this.#outcome = "upstream_bad_response";
      this.reply(502, "bad_gateway", { message: "the member's response could not be used" });
      return;
    }
    this.#status = status;
  }

  /**
   * Whether the response may end with trailers: a gRPC call, a client that said `te: trailers`, a member that
   * announced them (`trailer`) or did not give the body's length (chunked HTTP/1.1, h2 without content-length).
   * Otherwise the last DATA frame ends the stream: no wait for 'wantTrailers' (a setImmediate and an empty frame
   * a response); trailers a member sends anyway are dropped.
   */
  #wantsTrailers(out: OutgoingHttpHeaders): boolean {
    if (this.#grpc || this.#request?.teTrailers) return true;
    return out["content-length"] === undefined || out.trailer !== undefined;
  }

  /** Sends a response head; false when Node refused it (the stream is gone, or a field is not valid in h2). */
  #respond(headers: OutgoingHttpHeaders, body: "none" | "trailers" | "plain"): boolean {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return false;
    try {
      stream.respond(headers, body === "none" ? { endStream: true } : { waitForTrailers: body === "trailers" });
    } catch {
      return false;
    }
    this.#responseStarted = true;
    return true;
  }

  data(chunk: Buffer): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.writableEnded) return;
    this.#bytesOut += chunk.length;
    let flowing: boolean;
    if (this.#bytesOut === this.#bodyLength) {
      // The body's last bytes: written with the end, so one DATA frame carries them and END_STREAM.
      stream.end(chunk);
      // An ended stream reports no need to drain: what it still buffers (a client not reading) is timed the same.
      flowing = stream.writableLength < stream.writableHighWaterMark;
    } else flowing = stream.write(chunk);
    if (!flowing) {
      // The client is not reading: the member waits on it, so the client is timed, not the member.
      this.#call?.pause();
      this.#writeStalled = true;
      this.deadline = this.#ctx.deadlines.now() + this.#stallMs();
    }
  }

  /**
   * How long this stall may last. A stall holds the member's connection (or h2c stream): past the session's cap
   * of such streams it gets a short grace, so that one connection's unread streams cannot take a member's pool.
   */
  #stallMs(): number {
    const clientWrite = this.#ctx.config.timeouts.clientWrite;
    const holds = this.#holds;
    if (holds === undefined || this.#call === undefined) return clientWrite;
    if (!this.#holding) {
      this.#holding = true;
      this.#overCap = !holds.hold();
    }
    return this.#overCap ? Math.min(clientWrite, holds.graceMs) : clientWrite;
  }

  #releaseHold(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#overCap = false;
    this.#holds?.release();
  }

  #clientDrained(): void {
    if (!this.#writeStalled) return;
    this.#releaseHold();
    this.#writeStalled = false;
    this.#armBody();
    this.#call?.resume();
  }

  trailers(trailers: HeaderList): void {
    this.#trailers = h2Headers(trailers);
  }

  end(): void {
    this.#call = undefined;
    this.#attempt = undefined;
    // A stall past the session's cap was short because it held the member; the member's part is over now.
    if (this.#overCap && this.#writeStalled)
      this.deadline = this.#ctx.deadlines.now() + this.#ctx.config.timeouts.clientWrite;
    this.#releaseHold();
    if (!this.#failedStatus) this.#ctx.ejections.success(this.#member);
    this.#responseDone = true;
    const stream = this.#stream;
    // Trailers (or an empty DATA frame with END_STREAM) go out on 'wantTrailers'.
    if (!stream.writableEnded && !stream.destroyed) stream.end();
    this.#finish(undefined);
  }

  failed(failure: MemberFailure): void {
    this.#call = undefined;
    this.#attempt = undefined;
    const ctx = this.#ctx;
    const member = this.#member;
    const { kind, error } = failure;
    ctx.logger.debug({ member, failure: kind, err: error.message, partition: this.#partition }, "member failed");
    const decision = decide(ctx.policy, {
      outcome: outcomeOf(kind),
      method: this.#method,
      body: this.#bodyState(),
      tried: this.#tried.length,
      responseStarted: this.#responseStarted,
      reused: failure.reused ?? false,
      responseBytes: failure.responseBytes ?? false,
      closedEarly: failure.closedEarly ?? false,
      grpcMethod: this.#grpcMethod(),
    });
    if (decision.reason !== undefined) ctx.observer?.upstreamError(member, decision.reason);
    if (decision.eject && ctx.ejections.failure(member)) ctx.observer?.ejection(member);
    this.#outcome = `upstream_${kind}`;
    if (decision.action === "cut" || decision.action === "forward") {
      // The response had begun: all that is left is to end it short.
      this.#truncated = true;
      this.#cut("upstream_truncated");
      return;
    }
    let answer: Reply | Forward = decision.action === "retry" ? decision.otherwise : decision;
    if (decision.action === "retry") {
      // A kept-alive HTTP/1.1 connection that failed before any response byte: the same member again on a
      // fresh connection, as for HTTP/1.1 clients; otherwise the next member.
      const stale = failure.reused === true && !failure.responseBytes;
      const next = stale ? member : this.#next();
      if (next !== undefined) {
        this.#sendNext(next);
        return;
      }
    }
    if (answer.action === "forward")
      answer = { action: "reply", status: 502, error: "upstream_unavailable", message: "" };
    ctx.logger.warn(
      { member, failure: kind, err: error.message, partition: this.#partition, tried: this.#tried },
      "no member could answer",
    );
    this.reply(answer.status, answer.error, {
      message: answer.message,
      detail: { member, tried: this.#tried, cause: `member ${member}: ${error.message}` },
    });
  }

  drained(): void {
    this.#pauseBody(false);
  }

  queueTimeout(): void {
    this.#call = undefined;
    this.#attempt = undefined;
    this.#ctx.observer?.queueTimeout?.(this.#member);
    this.#outcome = "queue_timeout";
    this.reply(503, "queue_timeout", { retryAfter: Math.max(1, Math.ceil(this.#ctx.config.timeouts.queue / 1000)) });
  }

  /** The gRPC method (`/pkg.Service/Method`) of a gRPC call, for gRFC A6's retry rules; undefined otherwise. */
  #grpcMethod(): string | undefined {
    if (!this.#grpc) return undefined;
    const q = this.#target.indexOf("?");
    return q < 0 ? this.#target : this.#target.slice(0, q);
  }

  #bodyState(): BodyState {
    if (!this.#hasBody) return "none";
    if (this.#requestDone && this.#kept !== undefined) return "replayable";
    return this.#sentAny ? "sent" : "unsent";
  }

  #next(): string | undefined {
    const next = nextChoice(this.#routing, this.#partition, this.#tried, this.#ctx.ejections);
    return next === this.#member ? undefined : next;
  }

  #sendNext(next: string): void {
    this.#outcome = undefined;
    this.#ctx.observer?.failover();
    this.#send(next);
  }

  /**
   * Answers with one of ringroute's own errors: the same JSON body as HTTP/1.1 clients get, or for a gRPC call a
   * trailers-only response whose grpc-status says it. A response already begun is ended short instead.
   */
  reply(
    status: number,
    code: string,
    options: {
      message?: string;
      detail?: { member: string; tried: string[]; cause: string };
      extra?: Record<string, unknown>;
      retryAfter?: number;
    } = {},
  ): void {
    if (this.#ended) return;
    if (this.#responseStarted) {
      this.#cut(code);
      return;
    }
    const body = errorBody(code, this.#partition, this.#ctx.config.errors.detail, options);
    this.#status = status;
    this.#responseDone = true;
    let sent: boolean;
    if (this.#grpc) {
      sent = this.#respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(grpcStatusOf(code, status)),
          "grpc-message": grpcMessage(String(body.message)),
        },
        "none",
      );
    } else {
      const text = JSON.stringify(body);
      const headers: OutgoingHttpHeaders = {
        ":status": status,
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(text),
        "cache-control": "no-store",
      };
      if (options.retryAfter !== undefined) headers["retry-after"] = String(options.retryAfter);
      sent = this.#respond(headers, "plain");
      if (sent) this.#stream.end(text);
    }
    this.#finish(code);
  }

  /**
   * Ends a response that began and cannot complete: a gRPC call gets trailers saying UNAVAILABLE (its client
   * then knows the call failed; a reset would read as INTERNAL), anything else RST_STREAM.
   */
  #cut(reason: string): void {
    this.#dropCall();
    this.#truncated = true;
    const stream = this.#stream;
    if (this.#grpc && !stream.writableEnded && !stream.destroyed) {
      const code = reason === "deadline_exceeded" ? "deadline_exceeded" : "upstream_unavailable";
      this.#trailers = {
        "grpc-status": String(grpcStatusOf(code, 502)),
        "grpc-message": grpcMessage(`ringroute: the member's response was cut short (${reason})`),
      };
      stream.end();
    } else if (!stream.closed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    this.#finish(reason);
  }

  #clientFailed(failure: ClientFailure): void {
    this.#ctx.observer?.clientError?.(failure);
    this.#reason = clientFailureReason[failure];
    this.#outcome = failure;
    if (this.#responseStarted && !this.#responseDone) this.#truncated = true;
    this.#dropCall();
    this.#finish(undefined);
  }

  /** The stream closed: if the exchange was not over, the client reset it or its session went away. */
  #closed(): void {
    this.#ctx.deadlines.delete(this);
    if (this.#ended) return;
    this.#clientFailed("aborted");
    this.#cancelled?.();
  }

  #finish(reason: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#releaseHold();
    if (reason !== undefined) this.#reason ??= reason;
    this.#cancelDeadline?.();
    this.#cancelDeadline = undefined;
    this.#cancelWait?.();
    this.#cancelWait = undefined;
    if (!this.#writeStalled || this.#stream.closed) this.deadline = 0;
    const observer = this.#ctx.observer;
    if (observer === undefined) return;
    const now = performance.now();
    const member = this.#tried.length > 0 ? this.#member : "none";
    const status = this.#truncated ? "truncated" : this.#status;
    observer.request(member, this.#method, status, (now - this.#started) / 1000, "h2");
    if (observer.access !== undefined) observer.access(this.#record(now, member));
    observer.requestEnded?.();
  }

  #record(now: number, member: string): AccessRecord {
    const target = this.#target;
    const q = target.indexOf("?");
    const record: AccessRecord = {
      method: this.#method,
      path: q < 0 ? target : target.slice(0, q),
      status: this.#status,
      partition: this.#partition,
      member,
      tried: this.#tried.length,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      totalMs: now - this.#started,
      upstreamMs: this.#upstreamStarted === 0 ? 0 : now - this.#upstreamStarted,
      client: this.#client,
    };
    if (this.#reason !== undefined) record.reason = this.#reason;
    record.outcome = this.#outcome ?? "ok";
    if (this.#truncated) record.truncated = true;
    record.protocol = "h2";
    return record;
  }

  /** Whether `attempt` is the one in progress (a dropped call's late reports are not heard). */
  current(attempt: AttemptSink): boolean {
    return this.#attempt === attempt && !this.#ended;
  }
}
