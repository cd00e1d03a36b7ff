/**
 * A worker process's view of the cluster: the routing snapshot the primary
 * sent last, replaced whole on each message. It is the proxy's cluster
 * (`ProxyCluster`: routing, handoffWait, member(name), memberDown);
 * membership itself, the ring's events and their logs stay in the primary.
 */
import { RoutingTable } from "../../handoff/table.ts";
import { sameAddress } from "../../membership/protocol.ts";
import type { Member } from "../../membership/source.ts";
import type { ProxyCluster } from "../../proxy/server.ts";
import { Ring } from "../../ring/ring.ts";
import { type RoutingSnapshot, routingTable } from "../routing-snapshot.ts";

interface MemberListener {
  memberDown?(member: Member): void;
  memberUp?(member: Member): void;
  memberChanged?(member: Member, previous: Member): void;
}

export class WorkerView implements ProxyCluster {
  #routing: RoutingTable = RoutingTable.ready(Ring.build([]));
  #handoffWait: number | undefined;
  #version: number | undefined;
  #known = new Map<string, Member>();
  readonly #listeners = new Set<MemberListener>();

  /** The table requests are routed by: the primary's, as last received. */
  get routing(): RoutingTable {
    return this.#routing;
  }

  /** How long a request waits for a slot none holds ready; the `handoffWait` timer runs here, in the worker. */
  get handoffWait(): number | undefined {
    return this.#handoffWait;
  }

  /** The version of the snapshot routed by; undefined before the first. */
  get version(): number | undefined {
    return this.#version;
  }

  member(name: string): Member | undefined {
    return this.#known.get(name);
  }

  /** Members leaving the routing (the proxy drops their pools), entering it (metrics' retention), reached anew (new URL or protocol: pools dropped). */
  listen(listener: MemberListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Routes by `snapshot` from now on; throws (and keeps the old routing) if its table does not check out. */
  apply(snapshot: RoutingSnapshot): RoutingTable {
    const next = routingTable(snapshot);
    const previous = this.#routing;
    const previousKnown = this.#known;
    this.#known = new Map(snapshot.known.map((m) => [m.name, m]));
    this.#routing = next;
    this.#handoffWait = snapshot.handoffWait;
    this.#version = snapshot.version;
    for (const name of previous.members) {
      if (next.has(name)) continue;
      const member = this.#known.get(name) ?? ({ ...(previousKnown.get(name) as Member), state: "left" } as Member);
      for (const listener of this.#listeners) listener.memberDown?.(member);
    }
    for (const name of next.members) {
      const member = this.#known.get(name);
      if (!previous.has(name) && member !== undefined)
        for (const listener of this.#listeners) listener.memberUp?.(member);
    }
    // A new URL or protocol under the same name: what was connected for the old one is dropped.
    for (const [name, member] of this.#known) {
      const before = previousKnown.get(name);
      if (before !== undefined && !sameAddress(before, member))
        for (const listener of this.#listeners) listener.memberChanged?.(member, before);
    }
    return next;
  }
}
