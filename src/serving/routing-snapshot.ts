/**
 * What a proxy routes by, as one serialisable value with a version: the
 * routing ring (with coordinated hand-offs, old owners kept until the new
 * ones are ready) and every member record (URLs, states, tags). The primary
 * publishes a new version on every change of either; workers route by the
 * latest they were sent and report its version. Only this file knows how
 * the routing travels, so a new routing type changes it alone.
 */
import type { Cluster } from "../cluster.ts";
import type { Member } from "../membership/source.ts";
import { Ring, type RingConfig } from "../ring/ring.ts";

export interface RoutingSnapshot {
  /** Increases by one with every change the primary publishes; 0 is the first. */
  version: number;
  /** The routing ring as its table: entry p·ownerCount + r indexes `members`. */
  ring: { members: string[]; config: RingConfig; table: Uint32Array; checksum: string };
  /** Every member the source reported, in the ring or not. */
  known: Member[];
}

/** The snapshot of `routing` and `known`, as version `version`. */
export function routingSnapshot(version: number, routing: Ring, known: readonly Member[]): RoutingSnapshot {
  return {
    version,
    ring: {
      members: [...routing.members],
      config: { ...routing.config },
      table: routing.table,
      checksum: routing.checksum,
    },
    known: known.map((m) => ({ name: m.name, url: m.url, state: m.state, tags: { ...m.tags } })),
  };
}

/** The ring a snapshot routes by, rebuilt from its table (no placement runs). Throws if the table does not fit. */
export function routingRing(snapshot: RoutingSnapshot): Ring {
  const { members, config, table, checksum } = snapshot.ring;
  const ring = Ring.fromTable(members, config, table);
  if (ring.checksum !== checksum)
    throw new Error(`routing ${snapshot.version}: checksum ${ring.checksum}, sent ${checksum}`);
  return ring;
}

/**
 * Follows a cluster and publishes a new snapshot whenever what it routes by
 * changed: the routing ring (a membership change, a hand-off settling) or a
 * member record (a new URL under the same name, a state).
 */
export class RoutingFeed {
  #current: RoutingSnapshot;
  #identity: string;
  readonly #listeners = new Set<(snapshot: RoutingSnapshot) => void>();
  readonly #stop: () => void;

  constructor(private readonly cluster: Cluster) {
    this.#current = routingSnapshot(0, cluster.routing, cluster.knownMembers());
    this.#identity = identity(this.#current);
    this.#stop = cluster.listen({ changed: () => this.check() });
  }

  /** The latest snapshot. */
  get current(): RoutingSnapshot {
    return this.#current;
  }

  /** Calls `listener` with every new snapshot; returns the function that stops it. */
  listen(listener: (snapshot: RoutingSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Publishes a new version if the cluster's routing or member records differ from the latest. */
  check(): void {
    const next = routingSnapshot(this.#current.version + 1, this.cluster.routing, this.cluster.knownMembers());
    const id = identity(next);
    if (id === this.#identity) return;
    this.#current = next;
    this.#identity = id;
    for (const listener of this.#listeners) listener(next);
  }

  stop(): void {
    this.#stop();
    this.#listeners.clear();
  }
}

/** Everything a snapshot routes by except its version, as one comparable string. */
function identity(snapshot: RoutingSnapshot): string {
  const known = [...snapshot.known].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return `${snapshot.ring.checksum} ${JSON.stringify(known)}`;
}
