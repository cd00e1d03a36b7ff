import { Ring } from "../ring/ring.ts";
import type { Clock } from "../utils/clock.ts";
import type { Logger } from "../utils/logger.ts";
import type { HandoffDoc, VersionDoc } from "./documents.ts";
import { fromLists, partitionOf, rankOf, type Slot, slotOf, toLists } from "./slots.ts";

/** Release marks (slot → version), parsed once per document. */
const releasedMaps = new WeakMap<HandoffDoc, Map<Slot, number>>();
function releasedIn(doc: HandoffDoc): Map<Slot, number> {
  let map = releasedMaps.get(doc);
  if (map === undefined) {
    map = new Map();
    for (const [version, lists] of Object.entries(doc.released)) {
      for (const slot of fromLists(lists)) map.set(slot, Math.max(map.get(slot) ?? 0, Number(version)));
    }
    releasedMaps.set(doc, map);
  }
  return map;
}

/**
 * What a member does with its partitions. Both may return a promise; the
 * hand-off waits for it. `to`/`from` is the other member, or null when the
 * slot has no owner on that side (the first version, a rank that appears).
 */
export interface HandoffHandlers {
  /** Stop owning (partition, rank): save or flush it. When this settles the new owner may take over. */
  release?(partition: number, to: string | null, rank: number): void | Promise<void>;
  /** Take over (partition, rank); called only after the old owner released it (or the hand-off timed out). */
  acquire?(partition: number, from: string | null, rank: number): void | Promise<void>;
}

export interface HandoffRunnerOptions {
  /** This member's name. */
  name: string;
  handlers: HandoffHandlers;
  /** Milliseconds to wait for the old owner's release before acquiring anyway. */
  timeout: number;
  clock: Clock;
  logger: Logger;
  /** Whether `member` still holds a registration (a member that is gone cannot release). */
  alive(member: string): boolean;
  /** `member`'s published hand-off document, if any. */
  progress(member: string): HandoffDoc | undefined;
  /** Publishes this member's progress; `done` is set when every hand-off of `doc.version` has settled. */
  publish(doc: HandoffDoc, done: boolean): void;
}

interface Waiter {
  check(): boolean;
  resolve(): void;
}

/**
 * One member's side of coordinated hand-offs, version after version. Each
 * (partition, rank) has a chain of steps that run one after another, so a
 * second version never races the first: a release runs after a pending
 * acquire, an acquire waits for the old owner's release mark. A step from a
 * superseded version still runs its wait (the data may still be moving) but
 * skips an acquire the member no longer needs.
 */
export class HandoffRunner {
  /** Slots this member holds ready. */
  readonly held = new Set<Slot>();
  /** Slots this member let go and has not taken back, with the version that let them go: its release marks. */
  readonly released = new Map<Slot, number>();
  /** Hand-offs that gave up waiting for a release. */
  timeouts = 0;
  #chains = new Map<Slot, Promise<void>>();
  #busy = 0;
  #current: { version: number; ring: Ring } | undefined;
  #waiters = new Set<Waiter>();
  #stopped = false;
  readonly #options: HandoffRunnerOptions;

  constructor(options: HandoffRunnerOptions) {
    this.#options = options;
  }

  get version(): number | undefined {
    return this.#current?.version;
  }

  /** Whether every hand-off of the current version has settled. */
  get done(): boolean {
    return this.#current !== undefined && this.#busy === 0;
  }

  /** Takes up a version; older or repeated ones are ignored. */
  apply(doc: VersionDoc): void {
    if (this.#stopped || (this.#current && doc.version <= this.#current.version)) return;
    const { name: me } = this.#options;
    const previous = Ring.build(doc.previous, doc.ring);
    const next = Ring.build(doc.members, doc.ring);
    this.#current = { version: doc.version, ring: next };
    const version = doc.version;
    const ranks = Math.max(previous.ownerCount, next.ownerCount);
    for (let p = 0; p < doc.ring.partitions; p++) {
      for (let r = 0; r < ranks; r++) {
        const slot = slotOf(p, r);
        const from = previous.owner(p, r) ?? null;
        const to = next.owner(p, r) ?? null;
        if (to === me) {
          if (this.held.has(slot) && !this.#chains.has(slot)) continue;
          if (from === me) {
            // Owner before and after but not holding (a restarted member): take it up at once.
            if (!this.#chains.has(slot)) this.#schedule(slot, () => this.#acquire(slot, null));
            continue;
          }
          this.#schedule(slot, async () => {
            await this.#waitForRelease(from, version, slot);
            await this.#acquire(slot, from);
          });
        } else if (from === me || this.held.has(slot) || this.#chains.has(slot)) {
          this.#schedule(slot, () => this.#release(slot, to, version));
        }
      }
    }
    this.#publish();
  }

  /** Publishes the current progress again (after the member registered anew). */
  republish(): void {
    this.#publish();
  }

  /** Re-checks waits for release marks; call on every change of the others' documents. */
  recheck(): void {
    for (const waiter of this.#waiters) {
      if (waiter.check()) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Ends all waits (nothing more is acquired) and publishes nothing further. */
  stop(): void {
    this.#stopped = true;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }

  #owner(slot: Slot): string | undefined {
    return this.#current?.ring.owner(partitionOf(slot), rankOf(slot));
  }

  #schedule(slot: Slot, step: () => Promise<void>): void {
    this.#busy++;
    const previous = this.#chains.get(slot) ?? Promise.resolve();
    const chain: Promise<void> = previous
      .then(step)
      .catch((error) =>
        this.#options.logger.error({ err: error, partition: partitionOf(slot) }, "hand-off step failed"),
      )
      .finally(() => {
        this.#busy--;
        if (this.#chains.get(slot) === chain) this.#chains.delete(slot);
        this.#publish();
      });
    this.#chains.set(slot, chain);
  }

  async #acquire(slot: Slot, from: string | null): Promise<void> {
    // Superseded: a later version moved the slot away before it came.
    if (this.#stopped || this.#owner(slot) !== this.#options.name || this.held.has(slot)) return;
    this.released.delete(slot);
    const partition = partitionOf(slot);
    const rank = rankOf(slot);
    try {
      await this.#options.handlers.acquire?.(partition, from, rank);
    } catch (error) {
      // The slot is taken anyway: holding back would leave it routed to a member that gave it up.
      this.#options.logger.error({ err: error, partition, rank, from }, "acquire failed; taking the partition anyway");
    }
    this.held.add(slot);
  }

  async #release(slot: Slot, to: string | null, version: number): Promise<void> {
    if (this.held.has(slot)) {
      this.held.delete(slot);
      const partition = partitionOf(slot);
      const rank = rankOf(slot);
      try {
        await this.#options.handlers.release?.(partition, to, rank);
      } catch (error) {
        this.#options.logger.error({ err: error, partition, rank, to }, "release failed; letting the partition go");
      }
    }
    this.released.set(slot, version);
  }

  /** Resolves when `from` has marked the slot released for `version` (or later), is gone, or the timeout passes. */
  #waitForRelease(from: string | null, version: number, slot: Slot): Promise<void> {
    const { alive, progress, clock, timeout, logger } = this.#options;
    if (from === null || this.#stopped) return Promise.resolve();
    const check = () => {
      if (!alive(from)) return true;
      const doc = progress(from);
      return doc !== undefined && (releasedIn(doc).get(slot) ?? 0) >= version;
    };
    if (check()) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          cancel();
          resolve();
        },
      };
      const cancel = clock.setTimer(() => {
        if (!this.#waiters.delete(waiter)) return;
        this.timeouts++;
        logger.warn(
          { partition: partitionOf(slot), rank: rankOf(slot), from, version, timeoutMs: timeout },
          "no release from the old owner in time; acquiring anyway",
        );
        resolve();
      }, timeout);
      this.#waiters.add(waiter);
    });
  }

  #publish(): void {
    if (this.#stopped || this.#current === undefined) return;
    const { ring, version } = this.#current;
    const me = this.#options.name;
    const ready: Slot[] = [];
    for (const slot of this.held) if (ring.owner(partitionOf(slot), rankOf(slot)) === me) ready.push(slot);
    const byVersion = new Map<number, Slot[]>();
    for (const [slot, v] of this.released) {
      const slots = byVersion.get(v);
      if (slots) slots.push(slot);
      else byVersion.set(v, [slot]);
    }
    const released = Object.fromEntries([...byVersion].map(([v, slots]) => [String(v), toLists(slots)]));
    this.#options.publish({ version, ready: toLists(ready), released }, this.#busy === 0);
  }
}
