/**
 * Rapid-reset protection (CVE-2023-44487): how many streams an HTTP/2
 * client may cancel before their response completed, per connection. Each
 * such stream may already have cost a member a request, so a client that
 * opens and cancels streams in a loop makes the members work while it stays
 * under any concurrent-stream limit.
 *
 * A token bucket on the proxy's clock: a connection starts with `burst`
 * tokens, regains `perSecond` a second up to `burst`, and a cancelled stream
 * spends one; the reset that finds the bucket empty closes the connection
 * (GOAWAY ENHANCE_YOUR_CALM). Over any interval of t seconds a connection
 * gets at most burst + perSecond·t cancellations, and a client that cancels
 * at a steady rate below perSecond (a gRPC client whose deadlines expire, a
 * browser navigating away) is never cut off.
 *
 * Only a stream cancelled within `minLifetimeMs` of opening counts (Envoy's
 * "premature reset"): a client that gives up on a slow response, or ends a
 * watch or a streaming call it held for a while, is not what the attack
 * looks like, and a stream that lived that long already held one of the
 * session's concurrent streams for it.
 *
 * nghttp2 has a bucket of its own (1,000, 33/s, fixed in Node 20), but it
 * answers with INTERNAL_ERROR and leaves the socket open; this one is
 * tighter, names the reason and closes.
 */

export interface ResetLimit {
  /** Cancellations allowed at once on a fresh connection. */
  burst: number;
  /** Cancellations regained per second, up to `burst`. */
  perSecond: number;
  /** A stream cancelled this many milliseconds after it opened, or later, is not counted. */
  minLifetimeMs: number;
}

/**
 * A connection's bucket: thousandths of a token left as of `at` (ms on the
 * proxy's clock). Kept in thousandths so that a second's refill of
 * `perSecond` tokens is `perSecond` per millisecond, in whole numbers: no
 * rounding decides whether a cancellation is the one too many.
 */
export interface ResetBucket {
  readonly milliTokens: number;
  readonly at: number;
}

export function fullBucket(limit: ResetLimit, now: number): ResetBucket {
  return { milliTokens: limit.burst * 1000, at: now };
}

/**
 * A stream was cancelled at `now`: the bucket after it, and whether the
 * connection went past its limit (`calm`: tell it to calm down, and close).
 */
export function spendReset(
  bucket: ResetBucket,
  limit: ResetLimit,
  now: number,
): { bucket: ResetBucket; calm: boolean } {
  const elapsed = Math.max(0, now - bucket.at);
  const milliTokens = Math.min(limit.burst * 1000, bucket.milliTokens + elapsed * limit.perSecond);
  if (milliTokens < 1000) return { bucket: { milliTokens, at: now }, calm: true };
  return { bucket: { milliTokens: milliTokens - 1000, at: now }, calm: false };
}

/** A connection's budget, for the session that owns it. */
export class ResetBudget {
  #bucket: ResetBucket;

  constructor(
    readonly limit: ResetLimit,
    now: number,
  ) {
    this.#bucket = fullBucket(limit, now);
  }

  /** A stream opened at `openedAt` was cancelled at `now`; true when the connection is past its limit. */
  cancelled(openedAt: number, now: number): boolean {
    if (now - openedAt >= this.limit.minLifetimeMs) return false;
    return this.spend(now);
  }

  /** Counts one cancelled stream; true when the connection is past its limit. */
  spend(now: number): boolean {
    const { bucket, calm } = spendReset(this.#bucket, this.limit, now);
    this.#bucket = bucket;
    return calm;
  }
}
