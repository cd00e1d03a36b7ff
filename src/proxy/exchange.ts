/**
 * One request and the attempts made for it: the head written to a member in
 * one write, the body passed on as received (framing included), the
 * response head rewritten and its body passed back the same way. A member
 * that fails before its response began is replaced by the next member of the
 * preference list when the retry policy allows; after that, the response is
 * cut short and the failure counts against the member.
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ProxyConfig } from "../config.ts";
import type { RoutingTable } from "../handoff/table.ts";
import type { Logger } from "../utils/logger.ts";
import type { Deadlines, Timed } from "./deadlines.ts";
import { type Ejections, nextChoice } from "./failover.ts";
import { type BodyMode, chunkPrefix, chunkSuffix, lastChunk, responseFraming } from "./framing.ts";
import { headerList, trailerList } from "./h2/framing.ts";
import {
  AttemptSink,
  type HeaderList,
  type MemberCall,
  type MemberFailure,
  type MemberRequest,
  type MemberSink,
  type MemberTransport,
} from "./h2/transport.ts";
import { putLatin1, type RequestHead, readResponseFields, readResponseHead, writeFields } from "./headers.ts";
import type { Parser } from "./llhttp.ts";
import {
  type AccessRecord,
  type ClientFailure,
  clientFailureReason,
  type ProxyObserver,
  type UpstreamFailure,
} from "./observer.ts";
import { prefixed } from "./path.ts";
import { errorBody, errorResponse } from "./reply.ts";
import { type BodyState, decide, type Forward, type Reply, type RetryPolicy } from "./retry.ts";
import { ownershipHeaders, sendsOwnership } from "./route.ts";
import type { ResponseSink, UpstreamConnection, UpstreamPool, Upstreams } from "./upstream.ts";

/** What every exchange shares; replaced as a whole on reload. */
export interface EngineContext {
  config: ProxyConfig;
  upstreams: Upstreams;
  ejections: Ejections;
  observer: ProxyObserver | undefined;
  deadlines: Deadlines;
  logger: Logger;
  /** `proxy.retry`, compiled. */
  policy: RetryPolicy;
  tunnels: Set<Tunnel>;
  /** Called when the last tunnel closes. */
  tunnelsEmpty: () => void;
  /** How members declared `protocol: h2c` are reached (their multiplexed session pool). */
  h2c?: MemberTransport;
}

/** The client side of an exchange (a ClientConnection). */
export interface ClientSide {
  readonly socket: Socket;
  readonly address: string;
  /** Whether the response must end the connection (client asked, HTTP/1.0, shutting down). */
  readonly closeAfter: boolean;
  write(data: Buffer | string): boolean;
  /** The response is complete. */
  exchangeDone(exchange: Exchange): void;
  /** The client's bytes after the request head now belong to an Upgrade tunnel. */
  takeTunnel(): { socket: Socket; rest: Buffer | undefined };
  /** Stop or restart reading the client's request body (backpressure). */
  pauseBody(paused: boolean): void;
  /** Cut the connection (a response cannot be completed). */
  destroy(): void;
  /** The client stopped taking response bytes (true) or drained (false): its write deadline runs meanwhile. */
  writeStalled(stalled: boolean): void;
}

/** What the client connection learnt from the request head. */
export interface RequestInfo {
  method: string;
  /** The target as sent (for the access log). */
  target: string;
  /** The target the member gets, dot-segments removed, before the member's prefix. */
  memberTarget: string;
  head: RequestHead;
  /** The framing header the member gets (content-length or transfer-encoding), or "". */
  framing: string;
  hasBody: boolean;
  http10: boolean;
  upgrade: boolean;
  /** The routing table when the request was routed: failover stays within it. */
  routing: RoutingTable;
  partition: number;
  started: number;
  /**
   * The body reaches the exchange de-chunked (the request was chunked and bound for an h2c member, or waited for its
   * partition in a ring that has one): an HTTP/1.1 member gets it chunked again.
   */
  decoded: boolean;
}

const pendingLimit = 64 * 1024;

/** Every exchange's `#tried` before its first member; shared, so never changed (a new array replaces it). */
const noneTried: string[] = [];

/** The length in bytes of `HTTP/1.1 <status> <reason>\r\n` (the reason is latin1: a byte a character). */
function statusLineBytes(status: number, reason: string): number {
  return 9 + String(status).length + 1 + reason.length + 2;
}

/** Writes `HTTP/1.1 <status> <reason>\r\n` at the start of `out`; returns its end. */
function writeStatusLine(out: Buffer, status: number, reason: string): number {
  let p = putLatin1(out, 0, "HTTP/1.1 ");
  p = putLatin1(out, p, String(status));
  out[p++] = 0x20;
  p = putLatin1(out, p, reason);
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  return p;
}

/** Sized bodies up to this size that did not come with their head are waited for, to go out in one write with it. */
const combineLimit = 16 * 1024;

export class Exchange implements ResponseSink {
  /** Response bytes are copied before they are written (see #pass): the member socket's read buffer is reused. */
  readonly borrowsReadBuffer = true;
  readonly #ctx: EngineContext;
  readonly #client: ClientSide;
  readonly request: RequestInfo;
  /** Members tried, in order. Made with its first member: an empty array grows a 17-slot store on its first push. */
  #tried: string[] = noneTried;
  #member = "none";
  #pool: UpstreamPool | undefined;
  #conn: UpstreamConnection | undefined;
  /** Body bytes received before a member connection was ready. */
  #pending: Buffer[] | undefined;
  #pendingBytes = 0;
  /** The whole body, kept (slices of the received buffers, not copies) when it arrived before it was sent. */
  #replay: Buffer[] | undefined;
  #bodySent = false;
  /** The client's end of it: a client-side reason, or the member's failure prefixed `upstream_`. */
  #outcome: string | undefined;
  /** The response began but did not end whole. */
  #truncated = false;
  requestDone = false;
  responseStarted = false;
  responseDone = false;
  /** The client connection must close after this response. */
  closeAfter = false;
  status = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #upstreamStarted = 0;
  #reason: string | undefined;
  #ended = false;
  /** The member answered with a status `retry.on` lists: a failure, even when relayed. */
  #failedStatus = false;
  /**
   * The response head, written with the first body bytes (or at the end of the read that brought it): its
   * first `#heldHeadBytes` bytes, then room for a small body that did not come with it.
   */
  #heldHead: Buffer | undefined;
  #heldHeadBytes = 0;
  #awaitBody = false;
  /** How the response body is delimited to the client (framing.ts). */
  #body: BodyMode = "verbatim";
  /** The attempt in progress at an h2c member (one field: HTTP/1.1 members never need more). */
  #attempt: H2cAttempt | undefined;
  #h2cTarget: MemberSink | undefined;

  constructor(ctx: EngineContext, client: ClientSide, request: RequestInfo) {
    this.#ctx = ctx;
    this.#client = client;
    this.request = request;
    this.closeAfter = client.closeAfter || request.http10;
  }

  get tried(): number {
    return this.#tried.length;
  }

  /** Sends the request to `member`. */
  send(member: string): void {
    this.#tried = this.#tried.length === 0 ? [member] : [...this.#tried, member];
    this.#member = member;
    const pool = this.#ctx.upstreams.get(member);
    if (pool === undefined) {
      // Left the cluster between lookup and now: as if its connection was refused.
      this.upstreamFailed(undefined, "connect", new Error(`member ${member} is gone`));
      return;
    }
    if (pool.protocol === "h2c") {
      this.#sendH2c(member);
      return;
    }
    this.#pool = pool;
    pool.acquire(this, this.request.hasBody && !this.requestDone);
  }

  upstreamReady(conn: UpstreamConnection): void {
    if (this.#ended) {
      // Aborted while the connection was being opened: it goes back unused.
      conn.sink = undefined;
      conn.pool.release(conn);
      return;
    }
    this.#conn = conn;
    const request = this.request;
    const pool = conn.pool;
    const target = prefixed(pool.prefix, request.memberTarget);
    let extra = "";
    if (request.upgrade) extra = `connection: upgrade\r\nupgrade: ${request.head.upgrade}\r\n`;
    if (sendsOwnership(this.#ctx.config.headers.ownership, request.routing)) {
      extra += ownershipHeaders(request.routing, request.partition, pool.name);
    }
    const head = `${request.method} ${target} HTTP/1.1\r\n${request.head.lines}${request.framing}${extra}\r\n`;
    conn.expectNoBody(request.method === "HEAD");
    if (this.#upstreamStarted === 0) this.#upstreamStarted = performance.now();
    const pending = this.#replay ?? this.#pending;
    if (pending === undefined) {
      conn.write(head);
    } else {
      conn.socket.cork();
      conn.write(head);
      let flowing = true;
      if (request.decoded) for (const chunk of pending) flowing = this.#writeChunk(conn, chunk);
      else for (const chunk of pending) flowing = conn.write(chunk);
      conn.socket.uncork();
      // A whole body that was at hand before it was sent is kept: a failed attempt can send it again.
      if (this.requestDone && this.#pendingBytes <= pendingLimit) this.#replay = pending;
      this.#pending = undefined;
      this.#pendingBytes = 0;
      this.#bodySent = true;
      // Still paused if the member did not take it all: then the member is timed until it drains.
      if (flowing) this.#client.pauseBody(false);
      else if (!this.requestDone) conn.armResponse();
    }
    if (this.requestDone) {
      if (request.decoded) conn.write(lastChunk);
      this.#written(conn);
    }
  }

  /** The whole request is on its way to the member: from now on the member is timed. */
  #written(conn: UpstreamConnection): void {
    conn.requestWritten = true;
    conn.pool.uploadDone(conn);
    conn.armResponse();
  }

  /** Request body bytes from the client, framing included. */
  clientBody(buffer: Buffer, start: number, end: number): void {
    this.#bytesIn += end - start;
    const chunk = buffer.subarray(start, end);
    const conn = this.#conn;
    if (conn !== undefined) {
      this.#bodySent = true;
      if (!(this.request.decoded ? this.#writeChunk(conn, chunk) : conn.write(chunk))) {
        // The member is not taking the body: the client waits on it, so the member is timed, not the client.
        this.#client.pauseBody(true);
        if (conn.deadline === 0) conn.armResponse();
      }
      return;
    }
    const call = this.#attempt?.call;
    if (call !== undefined) {
      this.#bodySent = true;
      if (!call.write(chunk)) this.#client.pauseBody(true);
      return;
    }
    if (this.responseDone) return;
    this.#pending ??= [];
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes > pendingLimit) this.#client.pauseBody(true);
  }

  upstreamDrained(): void {
    this.#client.pauseBody(false);
    const conn = this.#conn;
    if (conn !== undefined && !this.requestDone && !conn.responding) conn.suspend();
  }

  /** The client sent the whole request. */
  clientRequestDone(): void {
    this.requestDone = true;
    const conn = this.#conn;
    if (conn !== undefined) {
      if (this.request.decoded) conn.write(lastChunk);
      this.#written(conn);
    } else this.#attempt?.call?.end();
  }

  /** A de-chunked body chunk framed again for an HTTP/1.1 member; false when the member is not taking it. */
  #writeChunk(conn: UpstreamConnection, chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    conn.write(chunkPrefix(chunk.length));
    conn.write(chunk);
    return conn.write(chunkSuffix);
  }

  batch(start: boolean): void {
    if (!start && !this.#awaitBody) this.#flushHead();
  }

  /** Writes a response head still held back for the body bytes that usually arrive with it. */
  #flushHead(): void {
    const head = this.#heldHead;
    if (head === undefined) return;
    this.#heldHead = undefined;
    this.#client.write(head.length === this.#heldHeadBytes ? head : head.subarray(0, this.#heldHeadBytes));
  }

  upstreamHead(conn: UpstreamConnection, parser: Parser, rest: Buffer, pos: number): boolean {
    const ctx = this.#ctx;
    const status = parser.status;
    if (status < 200) {
      if (status === 101 && this.request.upgrade) return this.#tunnel(conn, parser, rest, pos);
      // Informational: 100 only to a client that asked for it; others (103) to HTTP/1.1 clients only (RFC 9110 §15.2).
      if (status !== 101 && !this.request.http10 && (status !== 100 || this.request.head.expectContinue)) {
        const head = readResponseHead(parser.names, parser.values);
        this.#client.write(`HTTP/1.1 ${status} ${parser.reason}\r\n${head.lines}\r\n`);
      }
      return true;
    }
    if (ctx.policy.statuses[status] === 1) {
      const next = this.#statusFailed(status);
      if (next !== undefined) {
        // The member's answer is dropped with its connection; the next member gets the request.
        this.#conn = undefined;
        conn.destroy();
        this.#sendNext(next);
        return false;
      }
    }
    this.status = status;
    this.responseStarted = true;
    const fields = readResponseFields(parser.names, parser.values, this.request.http10);
    const framing = responseFraming({
      needsEof: parser.needsEof,
      chunked: fields.chunked,
      http10: this.request.http10,
      upgrade: this.request.upgrade,
    });
    this.#body = framing.body;
    // A client whose body is unread cannot go on either: its next bytes would be read as a request.
    if (framing.close || !this.requestDone) this.closeAfter = true;
    if (!parser.keepAlive) conn.noReuse();
    // Decoded spans come from the parser only for `dechunk`; the other modes take the raw bytes.
    parser.decode = framing.body === "dechunk";
    // The lines ringroute adds (framing.ts decides the framing; `readResponseFields` already left out the
    // Transfer-Encoding of a body it de-chunks).
    const rechunked = framing.body === "rechunk" ? "transfer-encoding: chunked\r\n" : "";
    let partition = "";
    let member = "";
    if (ctx.config.headers.ringInfo) {
      if (this.request.partition >= 0) partition = `x-ringroute-partition: ${this.request.partition}\r\n`;
      member = `x-ringroute-member: ${this.#member}\r\n`;
    }
    let close = "";
    if (this.closeAfter || this.#client.closeAfter) {
      this.closeAfter = true;
      close = "connection: close\r\n";
    }
    // Held until the body bytes of this read are known: head and body then go out in one write. A small sized
    // body that did not come with its head (a member that writes its head, then sends a file) is waited for.
    this.#awaitBody = fields.contentLength > 0 && fields.contentLength <= combineLimit && framing.body === "verbatim";
    // The head is written as bytes straight into the buffer it leaves in, with room for a body it waits for.
    const reason = parser.reason;
    const size =
      statusLineBytes(status, reason) +
      fields.bytes +
      rechunked.length +
      partition.length +
      member.length +
      close.length +
      2;
    const out = Buffer.allocUnsafe(size + (this.#awaitBody ? fields.contentLength : 0));
    let p = writeStatusLine(out, status, reason);
    p = writeFields(out, p, parser.names, parser.values, fields);
    p = putLatin1(out, p, rechunked);
    p = putLatin1(out, p, partition);
    p = putLatin1(out, p, member);
    p = putLatin1(out, p, close);
    out[p++] = 0x0d;
    out[p++] = 0x0a;
    this.#heldHead = out;
    this.#heldHeadBytes = p;
    return true;
  }

  /** A status `retry.on` lists: counted against the member; the next member to try, when the policy allows one. */
  #statusFailed(status: number): string | undefined {
    const ctx = this.#ctx;
    const member = this.#member;
    const decision = decide(ctx.policy, {
      outcome: { kind: "status", status },
      method: this.request.method,
      body: this.#bodyState(),
      tried: this.#tried.length,
      responseStarted: false,
    });
    this.#failedStatus = decision.eject;
    if (decision.reason !== undefined) {
      ctx.observer?.upstreamError(member, decision.reason);
      this.#outcome = "upstream_status";
    }
    if (decision.eject && ctx.ejections.failure(member)) ctx.observer?.ejection(member);
    return decision.action === "retry" ? this.#next() : undefined;
  }

  upstreamBody(buffer: Buffer, start: number, end: number): void {
    if (this.#body === "rechunk") this.#chunk(buffer, start, end);
    else this.#pass(buffer, start, end);
  }

  /**
   * Body bytes to the client as they are, with the held head in front when there is one: one write. The
   * bytes are in the member sockets' shared read buffer, valid only during this call (`borrowsReadBuffer`),
   * so they are always copied: a write the client does not take at once keeps its buffer until it does.
   */
  #pass(buffer: Buffer, start: number, end: number): void {
    const span = end - start;
    this.#bytesOut += span;
    const head = this.#heldHead;
    let out: Buffer;
    if (head === undefined) {
      out = Buffer.allocUnsafe(span);
      buffer.copy(out, 0, start, end);
    } else {
      this.#heldHead = undefined;
      const headBytes = this.#heldHeadBytes;
      if (head.length - headBytes === span) {
        // The body the head waited for, whole: into the room left for it.
        out = head;
      } else {
        out = Buffer.allocUnsafe(headBytes + span);
        head.copy(out, 0, 0, headBytes);
      }
      buffer.copy(out, headBytes, start, end);
    }
    if (!this.#client.write(out)) {
      // The client is not reading: the member waits on it, so the client is timed, not the member.
      this.#conn?.pauseResponse();
      this.#client.writeStalled(true);
    }
  }

  /** The client's socket drained: the member's response may flow again. */
  clientDrained(): void {
    this.#client.writeStalled(false);
    this.#conn?.resumeResponse();
    this.#attempt?.call?.resume();
  }

  /** One chunk of a close-delimited body, re-framed. */
  #chunk(buffer: Buffer, start: number, end: number): void {
    if (end === start) return;
    this.#flushHead();
    this.#client.write(chunkPrefix(end - start));
    this.#pass(buffer, start, end);
    this.#client.write(chunkSuffix);
  }

  upstreamDone(conn: UpstreamConnection): void {
    if (this.#body === "rechunk") {
      this.#flushHead();
      this.#client.write(lastChunk);
    }
    this.#flushHead();
    if (conn === this.#conn) this.#conn = undefined;
    if (!this.#failedStatus) this.#ctx.ejections.success(this.#member);
    this.responseDone = true;
    this.#end(undefined);
  }

  upstreamFailed(conn: UpstreamConnection | undefined, failure: UpstreamFailure, error: Error): void {
    // A connection this exchange already dropped cannot report (its sink is cleared); a new one may fail before it is ready.
    if (conn !== undefined && this.#conn !== undefined && conn !== this.#conn) return;
    this.#conn = undefined;
    this.#failed(
      failure === "status" ? "error" : failure,
      error,
      conn?.reused ?? false,
      conn?.responseBytes ?? false,
      conn?.peerClosed === true && !conn.requestWritten,
    );
  }

  /** An attempt failed (HTTP/1.1 connection or h2c stream): the retry policy says what the client gets. */
  #failed(
    failure: MemberFailure["kind"],
    error: Error,
    reused: boolean,
    responseBytes: boolean,
    closedEarly: boolean,
  ): void {
    const ctx = this.#ctx;
    const member = this.#member;
    ctx.logger.debug({ member, failure, err: error.message, partition: this.request.partition }, "member failed");
    const decision = decide(ctx.policy, {
      outcome: { kind: failure },
      method: this.request.method,
      body: this.#bodyState(),
      tried: this.#tried.length,
      responseStarted: this.responseStarted,
      reused,
      responseBytes,
      closedEarly,
    });
    if (decision.reason !== undefined) ctx.observer?.upstreamError(member, decision.reason);
    if (decision.eject && ctx.ejections.failure(member)) ctx.observer?.ejection(member);
    this.#outcome = `upstream_${failure}`;
    if (decision.action === "cut" || decision.action === "forward") {
      // The response had begun: all that is left is to cut it short.
      this.#reason = "upstream_truncated";
      this.#truncated = true;
      this.#client.destroy();
      this.#end(undefined);
      return;
    }
    let answer: Reply | Forward = decision.action === "retry" ? decision.otherwise : decision;
    if (decision.action === "retry") {
      // A kept-alive connection that failed before any response byte (the member closed it as it was picked):
      // the same member again on a fresh connection, as Go's transport does; otherwise the next member.
      const stale = reused && !responseBytes;
      const next = stale ? member : this.#next();
      if (next !== undefined) {
        this.#sendNext(next);
        return;
      }
    }
    if (answer.action === "forward")
      answer = { action: "reply", status: 502, error: "upstream_unavailable", message: "" };
    ctx.logger.warn(
      { member, failure, err: error.message, partition: this.request.partition, tried: this.#tried },
      "no member could answer",
    );
    this.reply(answer.status, answer.error, {
      message: answer.message,
      detail: { member, tried: this.#tried, cause: `member ${member}: ${error.message}` },
    });
  }

  #bodyState(): BodyState {
    if (!this.request.hasBody) return "none";
    return this.#replay !== undefined ? "replayable" : this.#bodySent ? "sent" : "unsent";
  }

  /** No member connection came free within `timeouts.queue`. */
  queueTimeout(): void {
    this.#ctx.observer?.queueTimeout?.(this.#member);
    this.#outcome = "queue_timeout";
    this.reply(503, "queue_timeout", {
      headers: `retry-after: ${Math.max(1, Math.ceil(this.#ctx.config.timeouts.queue / 1000))}\r\n`,
    });
  }

  /** The next member of the preference list to try, if any. */
  #next(): string | undefined {
    const next = nextChoice(this.request.routing, this.request.partition, this.#tried, this.#ctx.ejections);
    return next === this.#member ? undefined : next;
  }

  #sendNext(next: string): void {
    // What the failed attempt would have been blamed on no longer describes the exchange.
    this.#outcome = undefined;
    this.#ctx.observer?.failover();
    this.send(next);
  }

  /** Answers the client with one of ringroute's own errors. */
  reply(
    status: number,
    code: string,
    options: {
      message?: string;
      detail?: { member: string; tried: string[]; cause: string };
      extra?: Record<string, unknown>;
      /** Header lines to add (`name: value\r\n` each). */
      headers?: string;
    } = {},
  ): void {
    if (this.responseStarted) {
      this.#client.destroy();
      this.#end(code);
      return;
    }
    const body = errorBody(code, this.request.partition, this.#ctx.config.errors.detail, options);
    this.status = status;
    this.responseStarted = true;
    this.responseDone = true;
    if (!this.requestDone && this.request.hasBody) this.closeAfter = true;
    this.closeAfter ||= this.#client.closeAfter;
    this.#client.write(errorResponse(status, body, this.closeAfter, options.headers));
    this.#end(code);
  }

  /**
   * The client went away, stalled its body or stopped reading: drop the member's side without blaming the
   * member. Returns false when the exchange had already ended.
   */
  abort(failure: ClientFailure): boolean {
    if (this.#ended) return false;
    this.#reason = clientFailureReason[failure];
    this.#outcome = failure;
    if (this.responseStarted && !this.responseDone) this.#truncated = true;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) conn.destroy();
    else if (this.#attempt !== undefined) this.#dropCall();
    else this.#pool?.cancel(this);
    this.#end(undefined);
    return true;
  }

  // An h2c member (transport.ts's MemberTransport, the pool h2 streams use): the request head becomes a header
  // block by the same rules (headers.ts already rewrote it), the body goes de-chunked, and the response is
  // framed for HTTP/1.1 here (framing.ts). Retries, ejection and the log are this exchange's, as for HTTP/1.1.

  #sendH2c(member: string): void {
    const ctx = this.#ctx;
    const transport = ctx.h2c;
    const request = this.request;
    if (request.upgrade || transport === undefined) {
      // HTTP/2 has no Upgrade: nothing was sent, no one failed.
      this.#outcome = "member_protocol";
      this.reply(502, "member_protocol");
      return;
    }
    const head = request.head;
    if (!request.decoded && request.framing === "transfer-encoding: chunked\r\n") {
      // Routed to an HTTP/1.1 member first, its chunked body passed on framed: it cannot go to an h2c member.
      this.#outcome = "member_protocol";
      this.reply(502, "member_protocol", {
        message: "the member speaks HTTP/2 only (protocol: h2c): a chunked body already sent framed cannot follow",
      });
      return;
    }
    let headers = headerList(head.lines);
    if (head.expectContinue) headers = without(headers, "expect");
    if (sendsOwnership(ctx.config.headers.ownership, request.routing)) {
      const ownership = headerList(ownershipHeaders(request.routing, request.partition, member));
      headers.names.push(...ownership.names);
      headers.values.push(...ownership.values);
    }
    const call: MemberRequest = {
      method: request.method,
      path: request.memberTarget,
      authority: head.host ?? "",
      scheme: (this.#client.socket as { encrypted?: boolean }).encrypted === true ? "https" : "http",
      headers,
      teTrailers: head.teTrailers,
      hasBody: request.hasBody,
      contentLength:
        request.hasBody && head.transferEncoding === undefined && head.contentLength !== undefined
          ? Number(head.contentLength)
          : undefined,
      deadline: 0,
    };
    if (this.#upstreamStarted === 0) this.#upstreamStarted = performance.now();
    const attempt = new H2cAttempt(this, this.#h2cSink());
    this.#attempt = attempt;
    const opened = transport.open(member, call, attempt);
    if (this.#attempt !== attempt) return;
    attempt.call = opened;
    // ringroute answers the expectation (the h2c pool takes the body as it comes), while none of it came.
    if (head.expectContinue && !this.requestDone && this.#bytesIn === 0 && !request.http10) {
      this.#client.write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    const pending = this.#replay ?? this.#pending;
    let flowing = true;
    if (pending !== undefined) {
      for (const chunk of pending) flowing = opened.write(chunk);
      if (this.requestDone && this.#pendingBytes <= pendingLimit) this.#replay = pending;
      this.#pending = undefined;
      this.#pendingBytes = 0;
      this.#bodySent = true;
    }
    if (this.requestDone) opened.end();
    else this.#client.pauseBody(!flowing);
  }

  #dropCall(): void {
    const call = this.#attempt?.call;
    this.#attempt = undefined;
    call?.cancel();
  }

  /** Whether `attempt` is the call in progress. */
  current(attempt: AttemptSink): boolean {
    return this.#attempt === attempt && !this.#ended;
  }

  /** The h2c call's reports, made once an exchange first goes to an h2c member (the h1 path never builds it). */
  #h2cSink(): MemberSink {
    this.#h2cTarget ??= {
      ready: () => this.h2cReady(),
      headers: (status, headers, last) => this.h2cHeaders(status, headers, last),
      data: (chunk) => this.h2cData(chunk),
      trailers: (trailers) => this.h2cTrailers(trailers),
      end: () => this.h2cEnd(),
      failed: (failure) => this.h2cFailed(failure),
      drained: () => this.h2cDrained(),
      queueTimeout: () => this.h2cQueueTimeout(),
    };
    return this.#h2cTarget;
  }

  h2cReady(): void {
    if (this.#upstreamStarted === 0) this.#upstreamStarted = performance.now();
  }

  h2cHeaders(status: number, headers: HeaderList, last: boolean): void {
    const ctx = this.#ctx;
    const request = this.request;
    if (ctx.policy.statuses[status] === 1) {
      const next = this.#statusFailed(status);
      if (next !== undefined) {
        // The member's answer is dropped with its stream; the next member gets the request.
        this.#dropCall();
        this.#sendNext(next);
        return;
      }
    }
    this.status = status;
    this.responseStarted = true;
    const { names, values } = headers;
    const fields = readResponseFields(names, values, request.http10);
    // HTTP/2 frames the body itself: one without a content-length goes chunked to an HTTP/1.1 client (its
    // trailers with it), or ends with the connection for HTTP/1.0. One that cannot have a body has none.
    const bodiless = last || request.method === "HEAD" || status === 204 || status === 304;
    const framing = responseFraming({
      needsEof: !bodiless && fields.contentLength < 0,
      chunked: false,
      http10: request.http10,
      upgrade: false,
    });
    this.#body = framing.body;
    if (framing.close || !this.requestDone) this.closeAfter = true;
    let extra = framing.body === "rechunk" ? "transfer-encoding: chunked\r\n" : "";
    if (last && fields.contentLength < 0 && request.method !== "HEAD" && status !== 204 && status !== 304) {
      extra += "content-length: 0\r\n";
    }
    if (ctx.config.headers.ringInfo) {
      if (request.partition >= 0) extra += `x-ringroute-partition: ${request.partition}\r\n`;
      extra += `x-ringroute-member: ${this.#member}\r\n`;
    }
    if (this.closeAfter || this.#client.closeAfter) {
      this.closeAfter = true;
      extra += "connection: close\r\n";
    }
    const reason = STATUS_CODES[status] ?? "";
    const out = Buffer.allocUnsafe(statusLineBytes(status, reason) + fields.bytes + extra.length + 2);
    let p = writeStatusLine(out, status, reason);
    p = writeFields(out, p, names, values, fields);
    p = putLatin1(out, p, extra);
    out[p++] = 0x0d;
    out[p++] = 0x0a;
    this.#write(out.subarray(0, p));
  }

  h2cData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#bytesOut += chunk.length;
    if (this.#body === "rechunk") {
      this.#client.write(chunkPrefix(chunk.length));
      this.#client.write(chunk);
      this.#write(chunkSuffix);
    } else this.#write(chunk);
  }

  /** Writes to the client; one that stops reading pauses the member's stream and is timed instead. */
  #write(data: Buffer | string): void {
    if (!this.#client.write(data)) {
      this.#attempt?.call?.pause();
      this.#client.writeStalled(true);
    }
  }

  h2cTrailers(trailers: HeaderList): void {
    // Only a chunked body can carry them, and only to a client that said it reads them: otherwise dropped.
    if (this.#body === "rechunk" && this.request.head.teTrailers && this.#attempt !== undefined) {
      this.#attempt.trailersKept = trailers;
    }
  }

  h2cEnd(): void {
    const trailers = this.#attempt?.trailersKept;
    this.#attempt = undefined;
    if (this.#body === "rechunk") {
      let end = lastChunk;
      if (trailers !== undefined) {
        const kept = trailerList(trailers.names, trailers.values, 0);
        let lines = "";
        for (let i = 0; i < kept.names.length; i++) lines += `${kept.names[i]}: ${kept.values[i]}\r\n`;
        end = `0\r\n${lines}\r\n`;
      }
      this.#client.write(end);
    }
    if (!this.#failedStatus) this.#ctx.ejections.success(this.#member);
    this.responseDone = true;
    this.#end(undefined);
  }

  h2cFailed(failure: MemberFailure): void {
    this.#attempt = undefined;
    this.#failed(
      failure.kind,
      failure.error,
      failure.reused ?? false,
      failure.responseBytes ?? false,
      failure.closedEarly ?? false,
    );
  }

  h2cDrained(): void {
    this.#client.pauseBody(false);
  }

  h2cQueueTimeout(): void {
    this.#attempt = undefined;
    this.queueTimeout();
  }

  #end(reason: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    if (reason !== undefined) this.#reason ??= reason;
    const ctx = this.#ctx;
    const observer = ctx.observer;
    if (observer !== undefined) {
      const now = performance.now();
      const member = this.#reason === undefined ? this.#member : this.#tried.length > 0 ? this.#member : "none";
      const status = this.#truncated ? "truncated" : this.status;
      observer.request(member, this.request.method, status, (now - this.request.started) / 1000);
      if (observer.access !== undefined) observer.access(this.#record(now));
      observer.requestEnded?.();
    }
    if (this.responseDone) this.#client.exchangeDone(this);
  }

  #record(now: number): AccessRecord {
    const target = this.request.target;
    const q = target.indexOf("?");
    const record: AccessRecord = {
      method: this.request.method,
      path: q < 0 ? target : target.slice(0, q),
      status: this.status,
      partition: this.request.partition,
      member: this.#tried.length > 0 ? this.#member : "none",
      tried: this.#tried.length,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      totalMs: now - this.request.started,
      upstreamMs: this.#upstreamStarted === 0 ? 0 : now - this.#upstreamStarted,
      client: this.#client.address,
    };
    if (this.#reason !== undefined) record.reason = this.#reason;
    record.outcome = this.#outcome ?? "ok";
    if (this.#truncated) record.truncated = true;
    record.protocol = "http/1.1";
    return record;
  }

  /** The member switched protocols: its 101 goes to the client, then bytes flow both ways untouched. */
  #tunnel(conn: UpstreamConnection, parser: Parser, rest: Buffer, pos: number): boolean {
    const head = readResponseHead(parser.names, parser.values);
    const upgrade = head.upgrade ?? this.request.head.upgrade ?? "";
    this.#conn = undefined;
    this.status = 101;
    this.responseStarted = true;
    this.responseDone = true;
    const upstream = conn.detach();
    const { socket: client, rest: early } = this.#client.takeTunnel();
    client.write(`HTTP/1.1 101 ${parser.reason}\r\n${head.lines}connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`);
    // A copy: `rest` is the member sockets' shared read buffer.
    if (pos < rest.length) client.write(Buffer.from(rest.subarray(pos)));
    if (early !== undefined && early.length > 0) upstream.write(early);
    const tunnel = new Tunnel(this.#ctx, client, upstream);
    this.#ctx.tunnels.add(tunnel);
    this.#ctx.ejections.success(this.#member);
    this.#ended = true;
    const observer = this.#ctx.observer;
    if (observer !== undefined) {
      const now = performance.now();
      observer.request(this.#member, this.request.method, 101, (now - this.request.started) / 1000);
      observer.access?.(this.#record(now));
      observer.requestEnded?.();
    }
    return false;
  }
}

/** One h2c attempt: its call, and the member's trailers kept for a client that said `TE: trailers`. */
class H2cAttempt extends AttemptSink {
  /** The call it reports on, once opened. */
  call: MemberCall | undefined;
  /** The member's trailers, for a client that said `TE: trailers` and gets a chunked body. */
  trailersKept: HeaderList | undefined;
}

/** `list` without the fields named `name` (lower case). */
function without(list: HeaderList, name: string): HeaderList {
  const out: HeaderList = { names: [], values: [] };
  for (let i = 0; i < list.names.length; i++) {
    if (list.names[i] === name) continue;
    out.names.push(list.names[i] as string);
    out.values.push(list.values[i] as string);
  }
  return out;
}

/** An Upgrade tunnel: both sockets piped into each other, closed together, cut after `tunnel` ms without bytes. */
export class Tunnel implements Timed {
  deadline = 0;
  readonly #ctx: EngineContext;
  readonly #client: Socket;
  readonly #upstream: Socket;
  #closed = false;

  constructor(ctx: EngineContext, client: Socket, upstream: Socket) {
    this.#ctx = ctx;
    this.#client = client;
    this.#upstream = upstream;
    const touch = () => {
      this.deadline = ctx.deadlines.now() + ctx.config.timeouts.tunnel;
    };
    touch();
    ctx.deadlines.add(this);
    client.on("data", touch);
    upstream.on("data", touch);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => this.destroy();
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
    client.resume();
    upstream.resume();
  }

  expire(): void {
    this.destroy();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.deadlines.delete(this);
    this.#client.destroy();
    this.#upstream.destroy();
    this.#ctx.tunnels.delete(this);
    if (this.#ctx.tunnels.size === 0) this.#ctx.tunnelsEmpty();
  }
}
