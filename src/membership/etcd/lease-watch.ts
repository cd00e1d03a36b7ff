import type { Clock } from "../../utils/clock.ts";

/**
 * The fencing deadline of a lease, on the member's clock. etcd expires a
 * lease TTL after the last keepalive it received; a keepalive cannot have
 * been received before it was sent, so the lease is surely alive until TTL
 * after the send of the last keepalive that was answered. At that moment the
 * member must stop claiming its partitions (`onExpired`), whether or not it
 * has heard from etcd: others may acquire them as soon as etcd expires it.
 *
 *   sent(): a keepalive (or the grant) is on its way
 *   answered(): etcd answered the oldest one not yet answered
 */
export class LeaseWatch {
  readonly #clock: Clock;
  readonly #ttl: number;
  readonly #onExpired: () => void;
  /** Send times of keepalives not answered yet, oldest first. */
  #inFlight: number[] = [];
  #cancel: (() => void) | undefined;
  #expired = false;

  constructor(clock: Clock, ttlMs: number, onExpired: () => void) {
    this.#clock = clock;
    this.#ttl = ttlMs;
    this.#onExpired = onExpired;
  }

  /** Whether the deadline passed (or the watch was stopped). */
  get expired(): boolean {
    return this.#expired;
  }

  /** Starts the watch from the grant's send time. */
  start(grantSentAt: number): void {
    this.#arm(grantSentAt);
  }

  sent(): void {
    this.#inFlight.push(this.#clock.now());
  }

  answered(): void {
    const at = this.#inFlight.shift();
    if (at !== undefined) this.#arm(at);
  }

  /** A new keepalive stream: keepalives sent on the old one will not be answered. */
  reset(): void {
    this.#inFlight = [];
  }

  stop(): void {
    this.#expired = true;
    this.#cancel?.();
  }

  #arm(confirmedAt: number): void {
    if (this.#expired) return;
    this.#cancel?.();
    this.#cancel = this.#clock.setTimer(
      () => {
        this.#expired = true;
        this.#onExpired();
      },
      Math.max(0, confirmedAt + this.#ttl - this.#clock.now()),
    );
  }
}
