/**
 * Every connection's timeout as one number, checked by one periodic sweep:
 * setting a deadline costs an assignment instead of a timer per request.
 * A deadline fires up to one tick late; ticks are a tenth of the shortest
 * timeout (10–100 ms).
 */
import type { Clock } from "../utils/clock.ts";

export interface Timed {
  /** Clock time at which `expire` is called; 0 for none. */
  deadline: number;
  expire(): void;
}

export class Deadlines {
  readonly #items = new Set<Timed>();
  readonly #clock: Clock;
  #tick: number;
  #cancel: (() => void) | undefined;

  constructor(clock: Clock, shortest: number) {
    this.#clock = clock;
    this.#tick = tickFor(shortest);
  }

  now(): number {
    return this.#clock.now();
  }

  /** A new shortest timeout (after a reload). */
  retune(shortest: number): void {
    this.#tick = tickFor(shortest);
  }

  add(item: Timed): void {
    this.#items.add(item);
    if (this.#cancel === undefined) this.#schedule();
  }

  delete(item: Timed): void {
    this.#items.delete(item);
  }

  stop(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    this.#items.clear();
  }

  #schedule(): void {
    this.#cancel = this.#clock.setTimer(() => this.#sweep(), this.#tick);
  }

  #sweep(): void {
    this.#cancel = undefined;
    const now = this.#clock.now();
    for (const item of this.#items) {
      if (item.deadline !== 0 && now >= item.deadline) {
        item.deadline = 0;
        item.expire();
      }
    }
    if (this.#cancel === undefined && this.#items.size > 0) this.#schedule();
  }
}

function tickFor(shortest: number): number {
  return Math.max(10, Math.min(100, Math.floor(shortest / 10)));
}
