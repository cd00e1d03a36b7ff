import { request } from "undici";
import type { HandoffHandlers, HandoffStep } from "../../handoff/runner.ts";
import { type Clock, systemClock } from "../../utils/clock.ts";
import type { Logger } from "../../utils/logger.ts";

export interface HookOptions {
  /** POSTed when the member must let (partition, rank) go; 2xx = released. */
  release?: string | undefined;
  /** POSTed when the member takes (partition, rank) over; 2xx = acquired. */
  acquire?: string | undefined;
  /** Milliseconds one attempt may take (headers and body). Default 10 s. */
  timeout?: number;
  /** First pause between attempts, doubling up to `retryMax`. Default 200 ms. */
  retryMin?: number;
  retryMax?: number;
  clock?: Clock;
  logger: Logger;
}

/** The JSON body of a hook call. */
export interface HookCall {
  partition: number;
  rank: number;
  /** The member that had it (acquire), or this one (release); null when nobody had it. */
  from: string | null;
  /** The member that takes it (release), or this one (acquire); null when nobody takes it. */
  to: string | null;
  version: number;
}

/**
 * Hand-off handlers that call a backend over HTTP, for `ringroute member`:
 * each step POSTs {partition, rank, from, to, version} as JSON and is done
 * on a 2xx. Any other answer, a refused connection or an attempt past
 * `timeout` is retried (backing off) until it succeeds or the step's signal
 * fires (handoffTimeout, fencing, leaving): then the runner gives it up.
 */
export function httpHooks(name: string, options: HookOptions): HandoffHandlers {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const timeout = options.timeout ?? 10_000;
  const retryMin = options.retryMin ?? 200;
  const retryMax = options.retryMax ?? 5000;

  const call = async (kind: "release" | "acquire", url: string, body: HookCall, step: HandoffStep) => {
    let pause = retryMin;
    const stopIfAborted = () => {
      if (step.signal.aborted) throw new Error(`${kind} hook abandoned: ${String(step.signal.reason)}`);
    };
    for (let attempt = 1; ; attempt++) {
      stopIfAborted();
      let problem: string;
      try {
        const response = await request(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.any([step.signal, AbortSignal.timeout(timeout)]),
          headersTimeout: timeout,
          bodyTimeout: timeout,
        });
        const text = await response.body.text();
        if (response.statusCode >= 200 && response.statusCode < 300) return;
        problem = `answered ${response.statusCode}: ${text.slice(0, 200)}`;
      } catch (error) {
        stopIfAborted();
        problem = (error as Error).message;
      }
      logger.warn({ hook: kind, url, ...body, attempt, retryIn: pause, problem }, `${kind} hook failed; retrying`);
      await new Promise<void>((resolve) => {
        const cancel = clock.setTimer(resolve, pause);
        step.signal.addEventListener(
          "abort",
          () => {
            cancel();
            resolve();
          },
          { once: true },
        );
      });
      pause = Math.min(pause * 2, retryMax);
    }
  };

  const handlers: HandoffHandlers = {};
  const { release, acquire } = options;
  if (release !== undefined) {
    handlers.release = (partition, to, rank, step) =>
      call("release", release, { partition, rank, from: name, to, version: step.version }, step);
  }
  if (acquire !== undefined) {
    handlers.acquire = (partition, from, rank, step) =>
      call("acquire", acquire, { partition, rank, from, to: name, version: step.version }, step);
  }
  return handlers;
}
