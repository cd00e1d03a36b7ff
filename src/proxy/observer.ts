/**
 * Why a try against a member failed; the `reason` label of `ringroute_upstream_errors_total`: the
 * connection could not be opened, the member closed or reset it, did not answer in time, answered with a
 * status `retry.on` lists, sent a response that did not parse, or the connection failed otherwise; over
 * HTTP/2, `refused`: the member refused a stream or dropped it unprocessed with GOAWAY (it saw nothing).
 */
export type UpstreamFailure = "connect" | "reset" | "timeout" | "status" | "bad_response" | "error" | "refused";

/** Why a client's request ended badly; the `reason` label of `ringroute_client_errors_total`. */
export type ClientFailure = "head_timeout" | "body_timeout" | "slow_reader" | "aborted" | "bad_request";

/** The access log's `reason` for each client-side failure (the words it used before `outcome` existed), both protocols. */
export const clientFailureReason: Readonly<Record<ClientFailure, string>> = {
  head_timeout: "request_timeout",
  body_timeout: "request_timeout",
  slow_reader: "client_slow",
  aborted: "client_closed",
  bad_request: "bad_request",
};

/** The protocol a client spoke: the `protocol` label of `ringroute_requests_total` and field of the access log. */
export type ClientProtocol = "http/1.1" | "h2";

/** One line of the access log: what a request asked for and what became of it. */
export interface AccessRecord {
  method: string;
  /** The request target's path as the client sent it (no query). */
  path: string;
  status: number;
  /** The key's partition; -1 for a request without a key or one refused before routing. */
  partition: number;
  /** The member that answered, or `none` when ringroute answered itself. */
  member: string;
  /** Members tried. */
  tried: number;
  /** Request body bytes received from the client, response body bytes sent to it. */
  bytesIn: number;
  bytesOut: number;
  totalMs: number;
  /** From the first byte written to a member to the end of its response; 0 when none was reached. */
  upstreamMs: number;
  /** The client's address. */
  client: string;
  /** Why ringroute answered itself or cut the response (`upstream_unavailable`, `request_timeout`, `client_closed`…). */
  reason?: string;
  /**
   * How the exchange ended, blamed on one side: `ok`; the client's `head_timeout`, `body_timeout`,
   * `slow_reader`, `aborted`, `bad_request`; the member's `upstream_connect`, `upstream_reset`,
   * `upstream_timeout`, `upstream_status`, `upstream_bad_response`, `upstream_error`, `upstream_refused` (h2c);
   * `queue_timeout`; or `member_protocol` (an HTTP/1.1 Upgrade request for an h2c member).
   */
  outcome?: string;
  /** The response began but was cut short. */
  truncated?: boolean;
  /** The protocol the client spoke: `http/1.1` or `h2`. */
  protocol?: ClientProtocol;
}

/**
 * What the proxy reports as it works; the admin server's metrics implement
 * it. Member labels are member names (or `none` when ringroute answered
 * itself), never keys or paths.
 */
export interface ProxyObserver {
  /** A request head was received; it is in flight until the matching `requestEnded`. */
  requestStarted?(): void;
  /** The request `requestStarted` reported is done: answered, refused, failed or cut short (exactly once each). */
  requestEnded?(): void;
  /**
   * A response went to the client: who served it, its status (`truncated` when it began but was cut short),
   * the time from request to response end, and the protocol the client spoke (absent: HTTP/1.1).
   */
  request(
    member: string,
    method: string,
    status: number | "truncated",
    seconds: number,
    protocol?: ClientProtocol,
  ): void;
  /** A member failed to give a usable response. */
  upstreamError(member: string, reason: UpstreamFailure): void;
  /** A request moved on to the next member of its preference list. */
  failover(): void;
  /** A client's request failed on the client's side (the member is not blamed). */
  clientError?(reason: ClientFailure): void;
  /** A request waited `timeouts.queue` for a connection to `member` and was answered 503. */
  queueTimeout?(member: string): void;
  /** A member was ejected after failing repeatedly. */
  ejection(member: string): void;
  /** One record per request, after it ended. */
  access?(record: AccessRecord): void;
}
