/**
 * The retry decision: what to do when an attempt against one member ends
 * badly (or with a status the config retries). A pure function of the
 * outcome, the request and `proxy.retry`, so the whole policy reads and is
 * tested in one place; the engine only carries it out.
 *
 * The rules:
 * - A response that has begun reaching the client is never retried or
 *   replaced: the client connection is cut.
 * - A connection that could not be opened sent nothing, so any method moves
 *   on; after a reset, timeout or retried status only `retry.methods` do.
 * - A request body that has (partly) left for the failed member and was not
 *   kept cannot be sent again: 502 `body_not_replayable` where the failure
 *   would have been retried, and a retried status is passed through instead.
 * - A client whose request body stalled gets 408 and is never retried: the
 *   next member would stall the same way.
 * - At most `retry.attempts` further members; when the preference list has
 *   no untried member left, the engine does `otherwise`.
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
  /** A response that did not parse, or whose head is over `proxy.limits`. */
  | { kind: "bad_response" }
  /** Anything else on the member's side. */
  | { kind: "error" }
  /** The client's request body stalled for `timeouts.body`. */
  | { kind: "body-timeout" };

/**
 * Where the request body stands: `none` (no body), `unsent` (not a byte
 * read from the client yet, so the next member can have it whole), `sent`
 * (some of it left for the failed member and is gone), `replayable` (sent,
 * but a copy was kept).
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
  };
}

const forward: Forward = { action: "forward" };

const replies = {
  connect: reply(502, "upstream_unavailable", "the member could not be reached"),
  reset: reply(502, "bad_gateway", "the member closed the connection before answering"),
  error: reply(502, "bad_gateway", "the member's response could not be used"),
  timeout: reply(504, "upstream_timeout", "the member did not answer in time"),
  notReplayable: reply(
    502,
    "body_not_replayable",
    "the member failed after the request body was sent; the body cannot be sent again",
  ),
  bodyTimeout: reply(408, "request_timeout", "the request body stalled"),
} as const;

function reply(status: number, error: string, message: string): Reply {
  return { action: "reply", status, error, message };
}

/** What to do after an attempt ended with `input.outcome`. */
export function decide(policy: RetryPolicy, input: RetryInput): Decision {
  const { outcome } = input;
  switch (outcome.kind) {
    case "body-timeout":
      // The client's fault, not the member's; and the next member would wait for the same body.
      if (input.responseStarted) return { action: "cut", reason: undefined, eject: false };
      return { ...replies.bodyTimeout, reason: undefined, eject: false };
    case "status": {
      if (policy.statuses[outcome.status] !== 1) return { ...forward, reason: undefined, eject: false };
      const retry = mayRetry(policy, input, false) && input.body !== "sent";
      return retry
        ? { action: "retry", otherwise: forward, reason: "status", eject: true }
        : { ...forward, reason: "status", eject: true };
    }
    case "bad_response":
    case "error":
      // Not retried: a member whose responses do not parse is not the kind of failure failover is for.
      if (input.responseStarted) return { action: "cut", reason: outcome.kind, eject: false };
      return { ...replies.error, reason: outcome.kind, eject: false };
    default: {
      const kind = outcome.kind;
      if (input.responseStarted) return { action: "cut", reason: kind, eject: true };
      const otherwise = replies[kind];
      const configured = kind === "connect" ? policy.onConnect : kind === "reset" ? policy.onReset : policy.onTimeout;
      if (!configured) return { ...otherwise, reason: kind, eject: true };
      if (input.body === "sent") return { ...replies.notReplayable, reason: kind, eject: true };
      // Nothing reached a member that refused the connection, so any method may go on.
      if (!mayRetry(policy, input, kind === "connect")) return { ...otherwise, reason: kind, eject: true };
      return { action: "retry", otherwise, reason: kind, eject: true };
    }
  }
}

/** The attempt budget and the method allow another member. */
function mayRetry(policy: RetryPolicy, input: RetryInput, anyMethod: boolean): boolean {
  if (input.tried > policy.attempts) return false;
  return anyMethod || policy.methods.has(input.method);
}
