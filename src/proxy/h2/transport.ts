/**
 * What an HTTP/2 stream's exchange needs from the way a member is reached:
 * one request out, one response back, and how an attempt failed. Two
 * transports implement it: HTTP/1.1 members through the existing connection
 * pool (h1-member.ts, where h2 ↔ HTTP/1.1 framing is translated), and h2c
 * members through a pool of multiplexed sessions. The stream exchange
 * (stream.ts) decides routing, retries and errors; it never sees sockets,
 * frames or framing.
 *
 * Flow control both ways is explicit: `MemberCall.write` returns false when
 * the member is not taking the body (the exchange stops reading the client's
 * stream until `MemberSink.drained`), and the exchange calls `pause`/`resume`
 * when the client is not taking the response.
 */
import type { ProxyConfig } from "../../config.ts";
import type { Member } from "../../membership/source.ts";
import type { Logger } from "../../utils/logger.ts";
import type { Deadlines } from "../deadlines.ts";
import type { Outcome } from "../retry.ts";
import type { ProxyCluster } from "../upstream.ts";

/** Header fields as parallel lists of lower-case names and values (latin1 strings, as received). */
export interface HeaderList {
  names: string[];
  values: string[];
}

/** One request for a member. */
export interface MemberRequest {
  /** Upper case, as the client sent it. */
  method: string;
  /**
   * The target the member gets, normalised as for HTTP/1.1 (src/proxy/path.ts), query included, WITHOUT the
   * member URL's path prefix: the transport puts that in front.
   */
  path: string;
  /** The client's :authority (or Host); "" when it sent none. */
  authority: string;
  /** The scheme the client used to reach the proxy ("http" for h2c, "https" over TLS). */
  scheme: "http" | "https";
  /**
   * End-to-end headers for the member, already rewritten by the same rules as an HTTP/1.1 request
   * (src/proxy/headers.ts: hop-by-hop out, X-Forwarded-*, client x-ringroute-* dropped) plus the ownership
   * headers (route.ts). No pseudo-headers, no `host`, no framing headers (content-length is in `contentLength`).
   */
  headers: HeaderList;
  /** The client sent `te: trailers` (gRPC does): an h2c transport passes it on; HTTP/1.1 has no use for it. */
  teTrailers: boolean;
  /** Whether a body follows (the client's HEADERS did not end the stream). */
  hasBody: boolean;
  /** The client's content-length, when it sent one (HTTP/1.1 members get it instead of chunked framing). */
  contentLength: number | undefined;
  /**
   * Clock time (ms) by which the call must be answered, from `grpc-timeout`; 0 for none. The exchange
   * enforces it (and cancels the call); a transport may tell the member the time left (grpc-timeout).
   */
  deadline: number;
}

/** How an attempt failed; `kind` maps onto the retry policy's Outcome with `outcomeOf`. */
export interface MemberFailure {
  /**
   * - `connect`: no connection or session could be opened: the member saw nothing.
   * - `refused`: the member provably did not process the request (REFUSED_STREAM, or GOAWAY with a last
   *   stream id below this stream's): gRPC's "never processed", transparently retryable like `connect`.
   * - `reset`: the connection or stream was closed or reset after the request may have reached the member.
   * - `timeout`: the member did not answer (or stalled its body) within `proxy.timeouts.response`.
   * - `bad_response`: the response did not parse or broke a limit.
   * - `error`: any other failure on an established connection.
   */
  kind: "connect" | "refused" | "reset" | "timeout" | "bad_response" | "error";
  error: Error;
  /** HTTP/1.1 only: the connection had carried an earlier request (retry rule (b) of retry.ts). */
  reused?: boolean;
  /** A byte of a response arrived on this attempt. */
  responseBytes?: boolean;
  /** HTTP/1.1 only: the member closed the connection before the whole request was written. */
  closedEarly?: boolean;
  /** h2c only: the HTTP/2 error code of the member's RST_STREAM or GOAWAY, when there was one. */
  http2Code?: number;
}

/** What the exchange hears about its call; each method after `failed` or `end` is never called. */
export interface MemberSink {
  /** The request is on its way: a connection or stream was assigned (for timing). */
  ready(): void;
  /**
   * The member's final response head: status and end-to-end headers (no pseudo-headers, no connection-specific
   * or framing headers except a content-length that holds). Informational (1xx) responses are not reported.
   * `last`: nothing follows (no body, no trailers; `end` comes next): an h2c member's trailers-only response
   * (gRPC errors), a 204 or 304, a HEAD response, content-length 0. The client's response then ends with its
   * HEADERS frame, as gRPC requires of a trailers-only response.
   */
  headers(status: number, headers: HeaderList, last: boolean): void;
  /** Response body bytes (decoded: no HTTP/1.1 chunk framing). The buffer is the exchange's to keep. */
  data(chunk: Buffer): void;
  /** Trailer fields at the end of the body (HTTP/1.1 chunked trailers or h2 trailing HEADERS). */
  trailers(trailers: HeaderList): void;
  /** The response is complete. */
  end(): void;
  /** The attempt failed; the call is over (nothing else follows). */
  failed(failure: MemberFailure): void;
  /** The member takes request body again after `write` returned false. */
  drained(): void;
  /** No connection or stream came free within `proxy.timeouts.queue`: the call is over. */
  queueTimeout(): void;
}

/**
 * One attempt's sink: reports go on to `target` only while `owner` says this attempt is the one in progress,
 * so a dropped call's late reports (a reset or data already on its way) never reach an exchange that moved on.
 */
export class AttemptSink implements MemberSink {
  constructor(
    readonly owner: { current(attempt: AttemptSink): boolean },
    readonly target: MemberSink,
  ) {}

  ready(): void {
    if (this.owner.current(this)) this.target.ready();
  }
  headers(status: number, headers: HeaderList, last: boolean): void {
    if (this.owner.current(this)) this.target.headers(status, headers, last);
  }
  data(chunk: Buffer): void {
    if (this.owner.current(this)) this.target.data(chunk);
  }
  trailers(trailers: HeaderList): void {
    if (this.owner.current(this)) this.target.trailers(trailers);
  }
  end(): void {
    if (this.owner.current(this)) this.target.end();
  }
  failed(failure: MemberFailure): void {
    if (this.owner.current(this)) this.target.failed(failure);
  }
  drained(): void {
    if (this.owner.current(this)) this.target.drained();
  }
  queueTimeout(): void {
    if (this.owner.current(this)) this.target.queueTimeout();
  }
}

/** One request in flight to one member. */
export interface MemberCall {
  /** Request body bytes; false: stop sending until `MemberSink.drained`. Buffered until the call is ready. */
  write(chunk: Buffer): boolean;
  /**
   * The request body is complete (also when `hasBody` was false: then nothing was written). `trailers`: the
   * client's trailer fields (an h2 trailing HEADERS), filtered as response trailers are: an HTTP/1.1 member gets
   * them after a chunked body's last chunk, an h2c member when the request announced them (`trailer`).
   */
  end(trailers?: HeaderList): void;
  /** Stop delivering response data until `resume` (the client is not reading); the member is not timed meanwhile. */
  pause(): void;
  resume(): void;
  /** Abandon the call (the client went away, the deadline passed): RST_STREAM(CANCEL) or the connection closed. */
  cancel(): void;
}

/** One way of reaching members: HTTP/1.1 over the connection pool, or h2c over multiplexed sessions. */
export interface MemberTransport {
  /**
   * Starts `request` to member `name`; never throws. A member that left the cluster in the meantime is reported
   * as `failed({ kind: "connect" })` (asynchronously or at once).
   */
  open(name: string, request: MemberRequest, sink: MemberSink): MemberCall;
  /** The member left: its connections or sessions close once their requests are done. */
  drop(name: string): void;
  /** New proxy settings (a reload) for calls started from now on. */
  reconfigure(config: ProxyConfig): void;
  /** Shutting down: no new connections; those in use close when their requests end (h2c: GOAWAY). */
  close(): void;
  /** The shutdown deadline: everything is cut. */
  destroy(): void;
}

/** What a transport is built from (by the proxy's composition in server.ts). */
export interface TransportContext {
  cluster: ProxyCluster;
  config: ProxyConfig;
  deadlines: Deadlines;
  logger: Logger;
}

/** Makes a transport; the h2c session pool exports one of these. */
export type TransportFactory = (context: TransportContext) => MemberTransport;

/** How the proxy talks to `member`: its `protocol`, HTTP/1.1 when absent. */
export function memberProtocol(member: Member | undefined): "h1" | "h2c" {
  return member?.protocol === "h2c" ? "h2c" : "h1";
}

/**
 * The retry policy's Outcome for a failure. `refused` keeps its own kind: like `connect` the member never
 * processed the request, so it may go to the next owner whatever its method (gRFC A6's transparent retry), but
 * a draining member (GOAWAY) or one at its stream limit is not held against it for ejection.
 */
export function outcomeOf(kind: MemberFailure["kind"]): Outcome {
  return { kind };
}
