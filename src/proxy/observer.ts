/** Why a try against a member failed; the `reason` label of `ringroute_upstream_errors_total`. */
export type UpstreamFailure = "connect" | "reset" | "timeout" | "status" | "error";

/**
 * What the proxy reports as it works; the admin server's metrics implement
 * it. Member labels are member names (or `none` when ringroute answered
 * itself), never keys or paths.
 */
export interface ProxyObserver {
  /** A client request arrived; it is in flight until the matching `requestEnded`. */
  requestStarted?(): void;
  /** The request `requestStarted` reported is done: answered, failed or abandoned by the client (exactly once each). */
  requestEnded?(): void;
  /** A response went to the client: who served it, its status, and the time from request to response end. */
  request(member: string, method: string, status: number, seconds: number): void;
  /** A member failed to give a usable response. */
  upstreamError(member: string, reason: UpstreamFailure): void;
  /** A request moved on to the next member of its preference list. */
  failover(): void;
  /** A member was ejected after failing repeatedly. */
  ejection(member: string): void;
}
