/**
 * What `/readyz` answers. Ready means: membership has synced, the ring has a
 * member, the process is not shutting down, and, with `sourceDown:
 * unready`, the membership source is up. With the default `sourceDown:
 * ready` a source outage is reported in the body but keeps the status 200:
 * the proxy keeps routing on its last good view, which is what keeps a fleet
 * serving while the gossip layer hiccups.
 */
import type { Cluster } from "../cluster.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";

export interface ReadinessOptions {
  /** Whether a down membership source makes the proxy unready (default "ready"). */
  sourceDown?: "ready" | "unready";
  clock?: Clock;
  logger?: Logger;
}

/** The membership source as readiness sees it. */
export interface SourceState {
  up: boolean;
  /** When it last went up or down (ms since the epoch). */
  since: number;
  lastError: string | null;
}

export interface ReadinessReport {
  ready: boolean;
  /**
   * Why not ready (empty when ready): not_synced, no_members, shutting_down,
   * source_down; under coordinated hand-offs with no member in the election,
   * "no leader: …" saying why.
   */
  reasons: string[];
  synced: boolean;
  members: number;
  shuttingDown: boolean;
  sourceDown: "ready" | "unready";
  source: { kind: string; up: boolean; since: string; lastError: string | null };
}

export class Readiness {
  readonly #cluster: Cluster;
  readonly #sourceDown: "ready" | "unready";
  readonly #logger: Logger;
  readonly #unsubscribe: () => void;
  #state: SourceState;
  #shuttingDown = false;

  constructor(cluster: Cluster, options: ReadinessOptions = {}) {
    const clock = options.clock ?? systemClock;
    this.#cluster = cluster;
    this.#sourceDown = options.sourceDown ?? "ready";
    this.#logger = options.logger ?? silentLogger;
    this.#state = { up: cluster.sourceUp, since: clock.now(), lastError: null };
    this.#unsubscribe = cluster.listen({
      source: (up, error) => {
        this.#state = { up, since: clock.now(), lastError: error?.message ?? this.#state.lastError };
      },
      sourceError: (error) => {
        this.#state = { ...this.#state, lastError: error.message };
      },
    });
  }

  /** The source's state: up, since when, and its last error (kept after it recovers). */
  get source(): SourceState {
    return this.#state;
  }

  /** From now on /readyz answers 503 (shutdown has begun). */
  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.#logger.info("readiness: shutting down, /readyz now 503");
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  report(): ReadinessReport {
    const cluster = this.#cluster;
    // Before the source first delivers, `up` is false but nothing has failed yet.
    const up = cluster.sourceUp;
    const source = this.#state;
    const reasons: string[] = [];
    if (this.#shuttingDown) reasons.push("shutting_down");
    if (!cluster.synced) reasons.push("not_synced");
    else if (cluster.size === 0) reasons.push("no_members");
    if (cluster.synced && !up && this.#sourceDown === "unready") reasons.push("source_down");
    // Coordinated hand-offs that cannot start (no member in the election) say why, in words.
    const stalled = cluster.coordination?.stalled;
    if (stalled !== undefined) reasons.push(stalled);
    return {
      ready: reasons.length === 0,
      reasons,
      synced: cluster.synced,
      members: cluster.size,
      shuttingDown: this.#shuttingDown,
      sourceDown: this.#sourceDown,
      source: {
        kind: cluster.sourceKind,
        up,
        since: new Date(source.since).toISOString(),
        lastError: source.lastError,
      },
    };
  }

  close(): void {
    this.#unsubscribe();
  }
}
