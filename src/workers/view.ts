/**
 * A worker process's view of the cluster: the ring the primary built, and
 * the member records, replaced whole on each message. It offers what the
 * proxy reads (`routing`, `member(name)`, `listen(listener)`) and what the
 * per-worker metrics read; membership itself stays in the primary.
 */
import type { Cluster, ClusterListener } from "../cluster.ts";
import { RoutingTable } from "../handoff/table.ts";
import type { Member } from "../membership/source.ts";
import { Ring } from "../ring/ring.ts";
import type { RingMessage } from "./messages.ts";

export class WorkerView {
  ring: Ring = Ring.build([]);
  #known = new Map<string, Member>();
  readonly #listeners = new Set<ClusterListener>();
  #synced = false;

  /** The table the proxy routes by: the primary's ring, as last received, every slot ready. */
  get routing(): RoutingTable {
    return RoutingTable.ready(this.ring);
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Membership is watched by the primary; a worker only ever hears from it. */
  readonly sourceKind = "primary";
  readonly sourceUp = true;

  member(name: string): Member | undefined {
    return this.#known.get(name);
  }

  knownMembers(): Member[] {
    return [...this.#known.values()];
  }

  get size(): number {
    return this.ring.size;
  }

  listen(listener: ClusterListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Switches to the ring in `message`, built from its table (no placement
   * runs here). Tells listeners who left and joined, then the ring. Throws if
   * the table does not fit the members and config.
   */
  apply(message: RingMessage): Ring {
    const next = Ring.fromTable(message.members, message.config, message.table);
    const previous = this.ring;
    const previousKnown = this.#known;
    this.#known = new Map(message.known.map((m) => [m.name, m]));
    this.ring = next;
    this.#synced = true;
    if (next.checksum === previous.checksum) return next;
    for (const name of previous.members) {
      if (next.has(name)) continue;
      const member = this.#known.get(name) ?? ({ ...(previousKnown.get(name) as Member), state: "left" } as Member);
      this.#emit((l) => l.memberDown?.(member));
    }
    for (const name of next.members) {
      if (!previous.has(name)) this.#emit((l) => l.memberUp?.(this.#known.get(name) as Member));
    }
    this.#emit((l) => l.ring?.(next, previous));
    return next;
  }

  /**
   * The view typed as the Cluster that createProxy and Metrics take today;
   * they read only what WorkerView has (the proxy: routing or ring,
   * member(name), listen).
   */
  asCluster(): Cluster {
    return this as unknown as Cluster;
  }

  #emit(call: (listener: ClusterListener) => void): void {
    for (const listener of this.#listeners) {
      try {
        call(listener);
      } catch {
        // One broken listener must not stop the others or the ring update.
      }
    }
  }
}

/** The message that hands `ring` and the cluster's member records to a worker. */
export function ringMessage(ring: Ring, known: readonly Member[]): RingMessage {
  return {
    known: known.map((m) => ({ name: m.name, url: m.url, state: m.state, tags: { ...m.tags } })),
    members: [...ring.members],
    config: { ...ring.config },
    table: ring.table,
    checksum: ring.checksum,
  };
}
