/**
 * The retry decision: what to do when an attempt against one member ends
 * badly (or with a status the config retries). A pure function of the
 * outcome, the request and `proxy.retry`, so the whole policy reads and is
 * tested in one place; the engine only reports what happened.
 *
 * The rule (one for every failure): a request is sent again (to the next
 * member, or on a fresh connection) only if
 * - (a) the connection could not be opened: the member saw nothing, any method;
 * - (b) it failed on a *reused* connection before any response byte came
 *   back, and the method is in `retry.methods` or the member closed that
 *   connection (FIN or RST) before the whole request was written: any
 *   method, as Go's transport does for a server that closed an idle
 *   connection under it;
 * - (c) the method is in `retry.methods` and no response byte was passed on.
 * And always: the body must still be at hand (none, unread, or kept), the
 * failure's kind must be in `retry.on`, and `retry.attempts` not spent.
 * A socket error on an established connection (EHOSTUNREACH…) is (c), not (a).
 *
 * Over HTTP/2 (h2c members) one more outcome says the member saw nothing:
 * `refused`, a stream the member refused (REFUSED_STREAM) or never
 * processed (above the last stream id of its GOAWAY); it is retried as (a),
 * any method, and not held against the member (it is draining or busy).
 *
 * gRPC calls follow gRFC A6 instead of `retry.methods`: a call that cannot
 * have reached the member's application (`connect`, `refused`) moves on
 * whatever its method; one that may have reached it only if its method
 * (`/pkg.Service/Method`, or `/pkg.Service/*` for the whole service) is in
 * `retry.grpcMethods` and no response headers came back (A6 commits a call
 * at its response headers, so a gRPC status is never retried here).
 *
 * - A response that has begun reaching the client is never retried or
 *   replaced: the client connection is cut.
 * - A response that does not parse is answered 502 and not retried.
 * - Passive ejection counts connect failures, resets, timeouts (before or
 *   after the response started) and statuses listed in `retry.on`; a
 *   success is counted by the engine only when a response completes.
 */
import type { ProxyConfig } from "../config.ts";
import type { UpstreamFailure } from "./observer.ts";

/** How an attempt ended. */
export type Outcome =
  /** The member answered with this status (headers received, nothing sent to the client yet). */
  | { kind: "status"; status: number }
  /** The connection to the member could not be opened: the member saw nothing. */
  | { kind: "connect" }
  /** The member closed or reset the connection. */
  | { kind: "reset" }
  /** The member did not answer (or stalled its body) within `timeouts.response`. */
  | { kind: "timeout" }
  /** The member's response did not parse (or broke a limit). */
  | { kind: "bad_response" }
  /** Any other error on an established connection (EHOSTUNREACH, ENETUNREACH…). */
  | { kind: "error" }
  /** HTTP/2: the member refused the stream (REFUSED_STREAM) or never processed it (GOAWAY): it saw nothing. */
  | { kind: "refused" };

/**
 * Where the request body stands: `none` (no body), `unsent` (not a byte
 * read from the client yet, so the next member can have it whole), `sent`
 * (some of it left for the failed member and is gone), `replayable` (sent,
 * but the whole body was kept).
 */
export type BodyState = "none" | "unsent" | "sent" | "replayable";

export interface RetryInput {
  outcome: Outcome;
  /** Request method, upper case. */
  method: string;
  body: BodyState;
  /** Members tried so far, the one that just failed included (≥ 1). */
  tried: number;
  /** Whether any of the member's response has gone to the client. */
  responseStarted: boolean;
  /** The connection had carried an earlier request (it came from the pool). */
  reused?: boolean;
  /** A byte of a response arrived on this attempt. */
  responseBytes?: boolean;
  /** The member closed the connection (FIN or RST) before the whole request was written. */
  closedEarly?: boolean;
  /**
   * The gRPC method (`/pkg.Service/Method`, the request's path) when the request is a gRPC call: gRFC A6's
   * rules apply instead of `retry.methods`.
   */
  grpcMethod?: string;
}

/** A response ringroute makes itself: status and the JSON body's `error` and `message` (no addresses, no errnos). */
export interface Reply {
  action: "reply";
  status: number;
  error: string;
  message: string;
}

/** Send the member's response to the client as it is. */
export interface Forward {
  action: "forward";
}

/** Cut the client connection: its response has begun and cannot be replaced. */
export interface Cut {
  action: "cut";
}

/** Send the request to the next untried member of the preference list; if there is none, do `otherwise`. */
export interface Retry {
  action: "retry";
  otherwise: Reply | Forward;
}

export type Decision = (Retry | Reply | Forward | Cut) & {
  /** The `reason` label of `ringroute_upstream_errors_total`, or undefined when the member did nothing wrong. */
  reason: UpstreamFailure | undefined;
  /** Whether this counts as a failure of the member for passive ejection. */
  eject: boolean;
};

/** `proxy.retry` compiled once for the hot path. */
export interface RetryPolicy {
  readonly attempts: number;
  readonly onConnect: boolean;
  readonly onReset: boolean;
  readonly onTimeout: boolean;
  /** statuses[s] === 1: status s moves a request on. */
  readonly statuses: Uint8Array;
  readonly methods: ReadonlySet<string>;
  /** gRPC methods (`/pkg.Service/Method`) and services (`/pkg.Service/*`) that may be resent. */
  readonly grpcMethods: ReadonlySet<string>;
}

export function retryPolicy(retry: ProxyConfig["retry"]): RetryPolicy {
  const statuses = new Uint8Array(600);
  for (const condition of retry.on) if (typeof condition === "number") statuses[condition] = 1;
  return {
    attempts: retry.attempts,
    onConnect: retry.on.includes("connect-failure"),
    onReset: retry.on.includes("reset"),
    onTimeout: retry.on.includes("timeout"),
    statuses,
    methods: new Set(retry.methods),
    grpcMethods: new Set(retry.grpcMethods),
  };
}

const forward: Forward = { action: "forward" };

const replies = {
  connect: reply(502, "upstream_unavailable", "the member could not be reached"),
  reset: reply(502, "bad_gateway", "the member closed the connection before answering"),
  error: reply(502, "bad_gateway", "the connection to the member failed"),
  bad_response: reply(502, "bad_gateway", "the member's response could not be used"),
  refused: reply(502, "upstream_unavailable", "the member refused the request without processing it"),
  timeout: reply(504, "upstream_timeout", "the member did not answer in time"),
  notReplayable: reply(
    502,
    "body_not_replayable",
    "the member failed after the request body was sent; the body cannot be sent again",
  ),
} as const;

function reply(status: number, error: string, message: string): Reply {
  return { action: "reply", status, error, message };
}

/** What to do after an attempt ended with `input.outcome`. */
export function decide(policy: RetryPolicy, input: RetryInput): Decision {
  const { outcome } = input;
  switch (outcome.kind) {
    case "status": {
      if (policy.statuses[outcome.status] !== 1) return { ...forward, reason: undefined, eject: false };
      const retry = withinBudget(policy, input) && resendable(policy, input) && bodyAtHand(input);
      return retry
        ? { action: "retry", otherwise: forward, reason: "status", eject: true }
        : { ...forward, reason: "status", eject: true };
    }
    case "refused": {
      // The member saw nothing (a stream it refused or never processed): as a connect failure, but the member is
      // draining or at its stream limit, not failing, so it is not held against it.
      if (input.responseStarted) return { action: "cut", reason: "refused", eject: false };
      const otherwise = replies.refused;
      if (!policy.onConnect) return { ...otherwise, reason: "refused", eject: false };
      if (!bodyAtHand(input)) return { ...replies.notReplayable, reason: "refused", eject: false };
      if (!withinBudget(policy, input)) return { ...otherwise, reason: "refused", eject: false };
      return { action: "retry", otherwise, reason: "refused", eject: false };
    }
    case "bad_response":
      // Not retried: a member whose responses do not parse is not the kind of failure failover is for.
      if (input.responseStarted) return { action: "cut", reason: "bad_response", eject: false };
      return { ...replies.bad_response, reason: "bad_response", eject: false };
    default: {
      const kind = outcome.kind;
      const reason: UpstreamFailure = kind;
      const eject = true;
      if (input.responseStarted) return { action: "cut", reason, eject };
      const otherwise = replies[kind];
      const configured = kind === "connect" ? policy.onConnect : kind === "timeout" ? policy.onTimeout : policy.onReset;
      if (!configured || !resendable(policy, input)) return { ...otherwise, reason, eject };
      if (!bodyAtHand(input)) return { ...replies.notReplayable, reason, eject };
      if (!withinBudget(policy, input)) return { ...otherwise, reason, eject };
      return { action: "retry", otherwise, reason, eject };
    }
  }
}

/** Rules (a), (b) and (c): whether the member may have acted on the request in a way a resend would repeat. */
function resendable(policy: RetryPolicy, input: RetryInput): boolean {
  if (input.outcome.kind === "connect") return true; // (a)
  if (input.grpcMethod !== undefined) return grpcResendable(policy, input.grpcMethod, input);
  const idempotent = policy.methods.has(input.method);
  if (input.reused && !input.responseBytes && (idempotent || input.closedEarly)) return true; // (b)
  return idempotent && !input.responseStarted; // (c)
}

/** gRFC A6: a call that may have reached the application, only when listed and before response headers. */
function grpcResendable(policy: RetryPolicy, method: string, input: RetryInput): boolean {
  if (input.outcome.kind === "status" || input.responseBytes || input.responseStarted) return false;
  if (policy.grpcMethods.size === 0) return false;
  if (policy.grpcMethods.has(method)) return true;
  const slash = method.lastIndexOf("/");
  return slash > 0 && policy.grpcMethods.has(`${method.slice(0, slash)}/*`);
}

function bodyAtHand(input: RetryInput): boolean {
  return input.body !== "sent";
}

function withinBudget(policy: RetryPolicy, input: RetryInput): boolean {
  return input.tried <= policy.attempts;
}
