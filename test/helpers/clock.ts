import type { Clock } from "../../src/utils/clock.ts";

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when a test says so. `advance(ms)` runs every timer
 * that falls due, in due order, with `now()` set to each one's due time; a
 * timer set by a timer that fires runs too if it falls within the window.
 */
export class ManualClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #seq = 0;

  constructor(start = 1_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      const index = this.#timers.indexOf(timer);
      if (index >= 0) this.#timers.splice(index, 1);
    };
  }

  /** Timers still waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.#timers) {
        if (
          timer.at <= end &&
          (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))
        )
          next = timer;
      }
      if (next === undefined) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
  }

  /** Advances time and then lets promise callbacks that the timers started run. */
  async tick(ms: number): Promise<void> {
    this.advance(ms);
    await flush();
  }

  /**
   * Advances time timer by timer, letting promise callbacks run after each
   * one: what a timer starts (a health check that answers at once) settles
   * before the next timer (that check's deadline) fires, as it would in real
   * time. `tick` fires every due timer first, then flushes.
   */
  async run(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let next: number | undefined;
      for (const timer of this.#timers) if (timer.at <= end && (next === undefined || timer.at < next)) next = timer.at;
      if (next === undefined) break;
      this.advance(Math.max(0, next - this.#now));
      await flush();
    }
    this.advance(end - this.#now);
    await flush();
  }
}

/** Lets queued promise callbacks and I/O callbacks already due run. */
export async function flush(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}
