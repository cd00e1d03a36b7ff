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

/** What a hand-off step acts for. */
export interface HandoffStep {
  /** The ring version whose hand-off this is. */
  version: number;
  /**
   * Fires when the step no longer counts: the member lost its lease
   * (fenced), left, the step ran past `handoffTimeout` and was given up, or
   * (an acquire) a later version moved the slot away before it finished.
   */
  signal: AbortSignal;
}

/**
 * What a member does with its partitions. Both may return a promise; the
 * hand-off waits for it. `to`/`from` is the other member, or null when the
 * slot has no owner on that side (the first version, a rank that appears).
 */
export interface HandoffHandlers {
  /** Stop owning (partition, rank): save or flush it. When this settles the new owner may take over. */
  release?(partition: number, to: string | null, rank: number, step: HandoffStep): void | Promise<void>;
  /** Take over (partition, rank); called only after the old owner released it (or it is gone, or fenced). */
  acquire?(partition: number, from: string | null, rank: number, step: HandoffStep): void | Promise<void>;
}

/** Why a step's signal fired. */
export type AbortReason = "fenced" | "stopped" | "timeout" | "superseded";

export interface HandoffRunnerOptions {
  /** This member's name. */
  name: string;
  handlers: HandoffHandlers;
  /**
   * Milliseconds a handler may run before its step is given up (signal
   * fired, step reported done, counted in `failures`); also how long a new
   * owner waits for an old owner that does not speak the protocol (no
   * hand-off document) before acquiring anyway.
   */
  timeout: number;
  clock: Clock;
  logger: Logger;
  /** Whether `member` still holds a registration (a member that is gone cannot release). */
  alive(member: string): boolean;
  /** `member`'s published hand-off document, if any. */
  progress(member: string): HandoffDoc | undefined;
  /**
   * Publishes this member's progress; `done` is set when every hand-off of
   * `doc.version` has settled. May return a promise that settles once a
   * document of `doc.version` (or later) is in the store: releases of a
   * version begin only then (see `apply`).
   */
  publish(doc: HandoffDoc, done: boolean): void | Promise<void>;
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
 *
 * `fence()` is the member losing its lease: every running step's signal
 * fires, the held set is cleared and the runner starts over from the next
 * version it is given, holding nothing.
 */
export class HandoffRunner {
  /** Slots this member holds ready. */
  readonly held = new Set<Slot>();
  /** Slots this member let go and has not taken back, with the version that let them go: its release marks. */
  readonly released = new Map<Slot, number>();
  /** Hand-offs that acquired without the old owner's release (it does not speak the protocol). */
  timeouts = 0;
  /** Steps given up (ran past the timeout) or whose handler threw. */
  failures = 0;
  #chains = new Map<Slot, Promise<void>>();
  /** Running acquires by slot, to abort when a later version moves the slot away. */
  #acquiring = new Map<Slot, AbortController>();
  /** Every running step's controller. */
  #running = new Set<AbortController>();
  /** Bumped on fence(): steps of an earlier epoch do nothing more. */
  #epoch = 0;
  #busy = 0;
  #current: { version: number; ring: Ring } | undefined;
  /** The first version taken up since the start or the last fencing (`since` in the document). */
  #since = 0;
  #waiters = new Set<Waiter>();
  /** What each slot's running step is doing, for `pending()`. */
  #doing = new Map<Slot, string>();
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
    if (this.#current === undefined) this.#since = doc.version;
    this.#current = { version: doc.version, ring: next };
    const version = doc.version;
    for (const [slot, controller] of this.#acquiring) {
      if (next.owner(partitionOf(slot), rankOf(slot)) !== me) controller.abort("superseded" satisfies AbortReason);
    }
    // Proxies route a moving slot to its old owner until its document shows it took the version up, so a
    // release begins only once that document is written: requests routed before it went out may still
    // arrive while the slot is held (only those the proxies' watch delivers late come after).
    let written = () => {};
    const taken = new Promise<void>((resolve) => {
      written = resolve;
    });
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
            if (!this.#chains.has(slot))
              this.#schedule(slot, (epoch) => {
                this.#doing.set(slot, `v${version}: acquiring (owner before and after)`);
                return this.#acquire(slot, null, version, epoch);
              });
            continue;
          }
          this.#schedule(slot, async (epoch) => {
            this.#doing.set(slot, `v${version}: waiting for ${from}'s release mark ≥ ${version}`);
            await this.#waitForRelease(from, version, slot);
            this.#doing.set(slot, `v${version}: acquiring from ${from}`);
            await this.#acquire(slot, from, version, epoch);
          });
        } else if (from === me || this.held.has(slot) || this.#chains.has(slot)) {
          this.#schedule(slot, async (epoch) => {
            this.#doing.set(slot, `v${version}: waiting for its own v${version} document to be written`);
            await taken;
            this.#doing.set(slot, `v${version}: releasing to ${to}`);
            await this.#release(slot, to, version, epoch);
          });
        }
      }
    }
    Promise.resolve(this.#publish()).then(written, written);
  }

  /** Publishes the current progress again (after the member registered anew). */
  republish(): void {
    this.#publish();
  }

  /**
   * Every slot with a step queued or running, and what its running step
   * waits for ("p3/r1 v5: waiting for b's release mark ≥ 5 (b's document: v5, marks v4)"):
   * what a hang is reported with.
   */
  pending(): string[] {
    const { progress, alive } = this.#options;
    return [...this.#chains.keys()].map((slot) => {
      const doing = this.#doing.get(slot) ?? "queued";
      const from = /waiting for (\S+)'s release/.exec(doing)?.[1];
      let seen = "";
      if (from !== undefined) {
        const doc = progress(from);
        seen = ` (${from} ${alive(from) ? "alive" : "gone"}; its document: ${
          doc === undefined ? "none" : `v${doc.version}, mark for this slot v${releasedIn(doc).get(slot) ?? "none"}`
        })`;
      }
      return `p${partitionOf(slot)}/r${rankOf(slot)} ${doing}${seen}`;
    });
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

  /** Ends all waits (nothing more is acquired), fires every running step's signal and publishes nothing further. */
  stop(): void {
    this.#stopped = true;
    this.#abortAll("stopped");
  }

  /**
   * The member lost its lease: it holds nothing from now on. Running steps'
   * signals fire and their outcome is dropped; the next `apply` starts over
   * (as a member that just joined) and partitions come back only through
   * hand-offs.
   */
  fence(): void {
    this.#epoch++;
    this.held.clear();
    this.released.clear();
    this.#current = undefined;
    this.#abortAll("fenced");
  }

  /**
   * Whether this member may serve (partition, rank) now: it acquired it and
   * no release of it has begun (nor a fencing, nor a stop). Until its release
   * begins nobody else can take it over (a new owner waits for the release
   * mark), so serving is safe even after a version moved it away: that is
   * when proxies still route the slot here ("moving"). What the published
   * document lists ready is stricter: owned in the current version, nothing
   * pending.
   */
  holds(partition: number, rank: number): boolean {
    return this.held.has(slotOf(partition, rank)) && !this.#stopped;
  }

  #abortAll(reason: AbortReason): void {
    for (const controller of this.#running) controller.abort(reason);
    this.#running.clear();
    this.#acquiring.clear();
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }

  #owner(slot: Slot): string | undefined {
    return this.#current?.ring.owner(partitionOf(slot), rankOf(slot));
  }

  #schedule(slot: Slot, step: (epoch: number) => Promise<void>): void {
    this.#busy++;
    const epoch = this.#epoch;
    const previous = this.#chains.get(slot) ?? Promise.resolve();
    const chain: Promise<void> = previous
      .then(() => (epoch === this.#epoch ? step(epoch) : undefined))
      .catch((error) =>
        this.#options.logger.error({ err: error, partition: partitionOf(slot) }, "hand-off step failed"),
      )
      .finally(() => {
        this.#busy--;
        if (this.#chains.get(slot) === chain) {
          this.#chains.delete(slot);
          this.#doing.delete(slot);
        }
        this.#publish();
      });
    this.#chains.set(slot, chain);
  }

  async #acquire(slot: Slot, from: string | null, version: number, epoch: number): Promise<void> {
    // Superseded: a later version moved the slot away before it came.
    if (this.#stopped || epoch !== this.#epoch || this.#owner(slot) !== this.#options.name || this.held.has(slot))
      return;
    this.released.delete(slot);
    const partition = partitionOf(slot);
    const rank = rankOf(slot);
    const controller = new AbortController();
    this.#acquiring.set(slot, controller);
    const outcome = await this.#run(controller, "acquire", { partition, rank, from, version }, (step) =>
      this.#options.handlers.acquire?.(partition, from, rank, step),
    );
    if (this.#acquiring.get(slot) === controller) this.#acquiring.delete(slot);
    if (epoch !== this.#epoch || outcome === "aborted") return;
    // Taken even when the handler failed or was given up: holding back would
    // leave the slot routed to nobody; the failure is logged and counted.
    this.held.add(slot);
  }

  async #release(slot: Slot, to: string | null, version: number, epoch: number): Promise<void> {
    if (epoch !== this.#epoch) return;
    if (this.held.has(slot)) {
      // Not served from here on, whatever the handler does.
      this.held.delete(slot);
      const partition = partitionOf(slot);
      const rank = rankOf(slot);
      const controller = new AbortController();
      await this.#run(controller, "release", { partition, rank, to, version }, (step) =>
        this.#options.handlers.release?.(partition, to, rank, step),
      );
      if (epoch !== this.#epoch) return;
    }
    // Marked released even when the handler failed or was given up, so the
    // new owner acquires and later versions can become stable.
    this.released.set(slot, version);
  }

  /**
   * Runs one handler with its signal, for at most the timeout: then the
   * signal fires and the step counts as done with an error. "aborted" when
   * the signal fired for another reason (fenced, stopped, superseded).
   */
  async #run(
    controller: AbortController,
    kind: "acquire" | "release",
    context: { partition: number; rank: number; version: number; from?: string | null; to?: string | null },
    handler: (step: HandoffStep) => void | Promise<void> | undefined,
  ): Promise<"done" | "failed" | "aborted"> {
    const { clock, timeout, logger } = this.#options;
    this.#running.add(controller);
    let cancel: (() => void) | undefined;
    try {
      const work = Promise.resolve().then(() => handler({ version: context.version, signal: controller.signal }));
      const timedOut = new Promise<"timeout">((resolve) => {
        cancel = clock.setTimer(() => resolve("timeout"), timeout);
      });
      const aborted = new Promise<"aborted">((resolve) => {
        controller.signal.addEventListener("abort", () => resolve("aborted"), { once: true });
      });
      const result = await Promise.race([work.then(() => "done" as const), timedOut, aborted]);
      if (result === "timeout") {
        controller.abort("timeout" satisfies AbortReason);
        this.failures++;
        logger.error({ ...context, timeoutMs: timeout }, `${kind} still running after handoffTimeout; given up`);
        work.catch(() => {});
        return "failed";
      }
      if (result === "aborted") {
        work.catch(() => {});
        return "aborted";
      }
      return "done";
    } catch (error) {
      if (controller.signal.aborted) return "aborted";
      this.failures++;
      logger.error(
        { err: error, ...context },
        `${kind} failed; ${kind === "acquire" ? "taking" : "letting go of"} the partition anyway`,
      );
      return "failed";
    } finally {
      cancel?.();
      this.#running.delete(controller);
    }
  }

  /**
   * Resolves when `from` has marked the slot released for `version` (or
   * later) or is gone (dead, left, or fenced: its lease is gone, or its
   * document says its registration began after `version`). An old
   * owner that speaks the protocol gives up a stuck release by itself, so
   * the wait has no deadline; only one without a hand-off document (a member
   * registered by hand) is waited for just `timeout`.
   */
  #waitForRelease(from: string | null, version: number, slot: Slot): Promise<void> {
    const { alive, progress, clock, timeout, logger } = this.#options;
    if (from === null || this.#stopped) return Promise.resolve();
    const check = () => {
      if (!alive(from)) return true;
      const doc = progress(from);
      if (doc === undefined) return false;
      // A registration that began after `version` (the old owner was fenced or restarted) holds nothing of it
      // and never marks it: its earlier life's hold ended with that life. Counted only once this member has
      // taken up the version that life began with, so the acquire is checked against a ring at least as new.
      const since = doc.since ?? 0;
      if (since > version && (this.#current?.version ?? 0) >= since) return true;
      return (releasedIn(doc).get(slot) ?? 0) >= version;
    };
    if (check()) return Promise.resolve();
    return new Promise((resolve) => {
      let cancel = () => {};
      const waiter: Waiter = {
        check,
        resolve: () => {
          cancel();
          resolve();
        },
      };
      const expire = () => {
        if (!this.#waiters.has(waiter)) return;
        if (progress(from) !== undefined) {
          cancel = clock.setTimer(expire, timeout); // it speaks the protocol: its own timeout applies
          return;
        }
        this.#waiters.delete(waiter);
        this.timeouts++;
        logger.warn(
          { partition: partitionOf(slot), rank: rankOf(slot), from, version, timeoutMs: timeout },
          "the old owner has no hand-off document and did not release in time; acquiring anyway",
        );
        resolve();
      };
      cancel = clock.setTimer(expire, timeout);
      this.#waiters.add(waiter);
    });
  }

  #publish(): void | Promise<void> {
    if (this.#stopped || this.#current === undefined) return;
    const { ring, version } = this.#current;
    const me = this.#options.name;
    const ready: Slot[] = [];
    // Not while a step of the slot is queued or running (a release from an
    // earlier version may still be saving it): ready means held and settled.
    for (const slot of this.held) {
      if (ring.owner(partitionOf(slot), rankOf(slot)) === me && !this.#chains.has(slot)) ready.push(slot);
    }
    const byVersion = new Map<number, Slot[]>();
    for (const [slot, v] of this.released) {
      const slots = byVersion.get(v);
      if (slots) slots.push(slot);
      else byVersion.set(v, [slot]);
    }
    const released = Object.fromEntries([...byVersion].map(([v, slots]) => [String(v), toLists(slots)]));
    return this.#options.publish({ version, ready: toLists(ready), released, since: this.#since }, this.#busy === 0);
  }
}
