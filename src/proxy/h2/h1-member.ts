/**
 * HTTP/1.1 members for HTTP/2 clients: each call takes a connection from
 * the member's pool (src/proxy/upstream.ts, the same pool, timeouts and
 * reuse rules as HTTP/1.1 requests) and translates framing with framing.ts:
 * the request head and a chunked or sized body out, the response head,
 * decoded body and trailers back.
 */
import type { ProxyConfig } from "../../config.ts";
import type { Parser } from "../llhttp.ts";
import type { UpstreamFailure } from "../observer.ts";
import { prefixed } from "../path.ts";
import type { ResponseSink, UpstreamConnection, UpstreamPool, Upstreams } from "../upstream.ts";
import { bodyChunk, chunkedBody, lastChunkWith, memberHead, responseHeaderList, trailerList } from "./framing.ts";
import type { HeaderList, MemberCall, MemberRequest, MemberSink, MemberTransport } from "./transport.ts";

/** Body bytes buffered for a call still waiting for its connection; more and the client waits. */
const pendingLimit = 64 * 1024;

export class H1Transport implements MemberTransport {
  constructor(readonly upstreams: Upstreams) {}

  open(name: string, request: MemberRequest, sink: MemberSink): MemberCall {
    const call = new H1Call(request, sink);
    const pool = this.upstreams.get(name);
    if (pool === undefined) {
      // Left the cluster between lookup and now: as if its connection was refused.
      queueMicrotask(() => call.gone(name));
    } else call.start(pool);
    return call;
  }

  // The pools are the HTTP/1.1 engine's: it drops, reconfigures, closes and destroys them.
  drop(): void {}
  reconfigure(_config: ProxyConfig): void {}
  close(): void {}
  destroy(): void {}
}

class H1Call implements MemberCall, ResponseSink {
  /** Body bytes are copied before they go to the client stream (upstreamBody): reads may share one buffer. */
  readonly borrowsReadBuffer = true;
  readonly #request: MemberRequest;
  readonly #sink: MemberSink;
  readonly #chunked: boolean;
  #pool: UpstreamPool | undefined;
  #conn: UpstreamConnection | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #bodyDone = false;
  /** The client's trailer fields, after a chunked body's last chunk. */
  #requestTrailers: HeaderList | undefined;
  #over = false;
  /** Header fields of the response head; llhttp's later fields are the trailers. */
  #headFields = 0;
  #paused = false;

  constructor(request: MemberRequest, sink: MemberSink) {
    this.#request = request;
    this.#sink = sink;
    this.#chunked = chunkedBody(request);
  }

  start(pool: UpstreamPool): void {
    this.#pool = pool;
    pool.acquire(this, this.#request.hasBody && !this.#bodyDone);
  }

  gone(name: string): void {
    if (this.#over) return;
    this.#over = true;
    this.#sink.failed({ kind: "connect", error: new Error(`member ${name} is gone`) });
  }

  write(chunk: Buffer): boolean {
    if (this.#over || chunk.length === 0) return true;
    const conn = this.#conn;
    if (conn === undefined) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      return this.#pendingBytes <= pendingLimit;
    }
    if (this.#send(conn, chunk)) return true;
    // The member is not taking the body: the client waits on it, so the member is timed, not the client.
    if (conn.deadline === 0) conn.armResponse();
    return false;
  }

  #send(conn: UpstreamConnection, chunk: Buffer): boolean {
    if (!this.#chunked) return conn.write(chunk);
    let ok = true;
    for (const part of bodyChunk(chunk)) ok = conn.write(part);
    return ok;
  }

  end(trailers?: HeaderList): void {
    if (this.#bodyDone) return;
    this.#bodyDone = true;
    this.#requestTrailers = trailers;
    const conn = this.#conn;
    if (conn !== undefined && !this.#over) this.#written(conn);
  }

  /** The whole request is on its way to the member: from now on the member is timed. */
  #written(conn: UpstreamConnection): void {
    if (this.#chunked) conn.write(lastChunkWith(this.#requestTrailers));
    conn.requestWritten = true;
    conn.pool.uploadDone(conn);
    conn.armResponse();
  }

  pause(): void {
    this.#paused = true;
    this.#conn?.pauseResponse();
  }

  resume(): void {
    this.#paused = false;
    this.#conn?.resumeResponse();
  }

  cancel(): void {
    if (this.#over) return;
    this.#over = true;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) conn.destroy();
    else this.#pool?.cancel(this);
  }

  // ResponseSink: what the member's connection reports.

  upstreamReady(conn: UpstreamConnection): void {
    if (this.#over) {
      // Cancelled while the connection was being opened: it goes back unused.
      conn.sink = undefined;
      conn.pool.release(conn);
      return;
    }
    this.#conn = conn;
    const request = this.#request;
    conn.expectNoBody(request.method === "HEAD");
    const head = memberHead(request, prefixed(conn.pool.prefix, request.path));
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#sink.ready();
    let flowing = true;
    if (pending.length === 0) conn.write(head);
    else {
      conn.socket.cork();
      conn.write(head);
      for (const chunk of pending) flowing = this.#send(conn, chunk);
      conn.socket.uncork();
    }
    if (this.#bodyDone) this.#written(conn);
    else if (pending.length > 0) {
      // The client was told to wait while the connection was coming: it may send again.
      if (flowing) this.#sink.drained();
      else conn.armResponse();
    }
    if (this.#paused) conn.pauseResponse();
  }

  upstreamHead(conn: UpstreamConnection, parser: Parser, _rest: Buffer, _pos: number): boolean {
    const status = parser.status;
    // Informational responses (100, 103) are not passed on: HTTP/2 clients need none of them from here.
    if (status < 200) return true;
    if (!parser.keepAlive) conn.noReuse();
    // The body reaches the exchange decoded, as DATA frames carry it.
    parser.decode = true;
    this.#headFields = parser.names.length;
    const headers = responseHeaderList(parser.names, parser.values);
    const contentLength = headers.names.indexOf("content-length");
    const last =
      this.#request.method === "HEAD" ||
      status === 204 ||
      status === 304 ||
      (contentLength >= 0 && headers.values[contentLength] === "0");
    this.#sink.headers(status, headers, last);
    // The exchange may have dropped the call (a status it retries): the connection goes with it.
    return !this.#over;
  }

  upstreamBody(buffer: Buffer, start: number, end: number): void {
    if (this.#over || end === start) return;
    // A copy: the member sockets' read buffer is reused for the next read, and the client stream keeps what it is given.
    this.#sink.data(Buffer.from(buffer.subarray(start, end)));
  }

  upstreamDone(conn: UpstreamConnection): void {
    if (this.#over) return;
    this.#over = true;
    this.#conn = undefined;
    const parser = conn.parser;
    if (parser.names.length > this.#headFields) {
      const trailers = trailerList(parser.names, parser.values, this.#headFields);
      if (trailers.names.length > 0) this.#sink.trailers(trailers);
    }
    this.#sink.end();
  }

  upstreamFailed(conn: UpstreamConnection | undefined, failure: UpstreamFailure, error: Error): void {
    if (this.#over) return;
    if (conn !== undefined && this.#conn !== undefined && conn !== this.#conn) return;
    this.#over = true;
    this.#conn = undefined;
    this.#sink.failed({
      kind: failure === "status" ? "error" : failure,
      error,
      reused: conn?.reused ?? false,
      responseBytes: conn?.responseBytes ?? false,
      closedEarly: conn?.peerClosed === true && !conn.requestWritten,
    });
  }

  upstreamDrained(): void {
    if (this.#over) return;
    const conn = this.#conn;
    // Waiting on the client again (its body still arriving): the member is not timed meanwhile.
    if (conn !== undefined && !this.#bodyDone && !conn.responding) conn.suspend();
    this.#sink.drained();
  }

  batch(_start: boolean): void {}

  queueTimeout(): void {
    if (this.#over) return;
    this.#over = true;
    this.#sink.queueTimeout();
  }
}
