/**
 * Time, passed in. Every component that waits or reads the time takes a
 * Clock, so each rule about time can be tested on a manual clock
 * (test/helpers/clock.ts) without real waiting. `systemClock` is the default.
 */
export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns the function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The real clock: Date.now and setTimeout, timers unref'd so they never keep a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
