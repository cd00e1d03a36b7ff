/**
 * The retry decision, as a pure function: after a member failed (or answered
 * with a status that `retry.on` lists), either try the next member of the
 * preference list or send a reply. Which member is next is failover's
 * business (nextChoice); this only says whether to look for one.
 */
import type { ProxyConfig } from "../config.ts";
import type { UpstreamFailure } from "./observer.ts";

export interface RetryInput {
  /** What went wrong: a failure before the response began, or a status the member answered with. */
  failure: UpstreamFailure | undefined;
  status?: number | undefined;
  method: string;
  /** Whether body bytes already went to a member (then nothing can be replayed). */
  bodySent: boolean;
  /** Members tried so far, the failed one included. */
  attempts: number;
}

export type RetryDecision =
  | { action: "retry" }
  /** Relay the member's own response (a status that may not be retried). */
  | { action: "relay" }
  | { action: "reply"; status: number; error: string };

/** The `proxy.retry` settings the policy reads. */
export type RetryConfig = ProxyConfig["retry"];

export function decideRetry(input: RetryInput, config: RetryConfig): RetryDecision {
  const { failure, status, method, bodySent, attempts } = input;
  const more = attempts <= config.attempts;
  const idempotent = config.methods.includes(method);
  if (failure === undefined || failure === "status") {
    // The member answered; its answer goes to the client unless another member may do better.
    const listed = status !== undefined && config.on.includes(status);
    return listed && more && idempotent && !bodySent ? { action: "retry" } : { action: "relay" };
  }
  if (failure === "connect") {
    // Nothing reached a member that refused the connection: any method may go on.
    if (config.on.includes("connect-failure") && more) return { action: "retry" };
    return unavailable;
  }
  if (failure === "timeout") {
    if (config.on.includes("timeout") && more && idempotent && !bodySent) return { action: "retry" };
    return { action: "reply", status: 504, error: "upstream_timeout" };
  }
  if (failure === "reset") {
    if (bodySent) return { action: "reply", status: 502, error: "body_not_replayable" };
    if (config.on.includes("reset") && more && idempotent) return { action: "retry" };
    return unavailable;
  }
  return unavailable;
}

const unavailable: RetryDecision = { action: "reply", status: 502, error: "upstream_unavailable" };
