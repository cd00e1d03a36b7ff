/**
 * What a proxy routes by, as one serialisable value with a version: the
 * routing table (each slot to a member, or none ready while a hand-off
 * runs), how long a request waits for a slot none holds ready, and every
 * member record (URLs, protocols, states, tags). The primary publishes a new version on
 * every change of any of them; workers route by the latest they were sent
 * and report its version. Only this file knows how the routing travels.
 */
import type { Cluster } from "../cluster.ts";
import { type RoutingMessage, RoutingTable } from "../handoff/table.ts";
import { protocolOf, withProtocol } from "../membership/protocol.ts";
import type { Member } from "../membership/source.ts";

export interface RoutingSnapshot {
  /** Increases by one with every change the primary publishes; 0 is the first. */
  version: number;
  /** The routing table, as `RoutingTable.toMessage()` gives it. */
  routing: RoutingMessage;
  /** Milliseconds a request waits for a slot no member holds ready (coordinated hand-offs). */
  handoffWait: number | undefined;
  /** Every member the source reported, in the routing or not. */
  known: Member[];
}

/** The snapshot of `routing`, `handoffWait` and `known`, as version `version`. */
export function routingSnapshot(
  version: number,
  routing: RoutingTable,
  known: readonly Member[],
  handoffWait?: number,
): RoutingSnapshot {
  return {
    version,
    routing: routing.toMessage(),
    handoffWait,
    // "h1" travels as no protocol at all: a source that writes it out changes nothing.
    known: known.map((m) =>
      withProtocol(
        { name: m.name, url: m.url, state: m.state, tags: { ...m.tags } },
        protocolOf(m) === "h1" ? undefined : m.protocol,
      ),
    ),
  };
}

/** The table a snapshot routes by; throws if it does not match its checksum. */
export function routingTable(snapshot: RoutingSnapshot): RoutingTable {
  return RoutingTable.fromMessage(snapshot.routing);
}

/**
 * Follows a cluster and publishes a new snapshot whenever what it routes by
 * changed: the routing table (a membership change, a hand-off step) or a
 * member record (a new URL or protocol under the same name, a state).
 */
export class RoutingFeed {
  #current: RoutingSnapshot;
  #identity: string;
  readonly #listeners = new Set<(snapshot: RoutingSnapshot) => void>();
  readonly #stop: () => void;

  constructor(private readonly cluster: Cluster) {
    this.#current = this.#snapshot(0);
    this.#identity = identity(this.#current);
    this.#stop = cluster.listen({ changed: () => this.check() });
  }

  get current(): RoutingSnapshot {
    return this.#current;
  }

  listen(listener: (snapshot: RoutingSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  check(): void {
    const next = this.#snapshot(this.#current.version + 1);
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

  #snapshot(version: number): RoutingSnapshot {
    return routingSnapshot(version, this.cluster.routing, this.cluster.knownMembers(), this.cluster.handoffWait);
  }
}

function identity(snapshot: RoutingSnapshot): string {
  const known = [...snapshot.known].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return `${snapshot.routing.checksum} ${snapshot.handoffWait} ${JSON.stringify(known)}`;
}
