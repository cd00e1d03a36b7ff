/**
 * A worker process's view of the cluster: the routing snapshot the primary
 * sent last, replaced whole on each message. It is the proxy's cluster
 * (`ProxyCluster`: routing, member(name), memberDown); membership itself,
 * the ring's events and their logs stay in the primary.
 */
import type { Member } from "../../membership/source.ts";
import type { ProxyCluster } from "../../proxy/server.ts";
import { Ring } from "../../ring/ring.ts";
import { type RoutingSnapshot, routingRing } from "../routing-snapshot.ts";

export class WorkerView implements ProxyCluster {
  #routing: Ring = Ring.build([]);
  #version: number | undefined;
  #known = new Map<string, Member>();
  readonly #listeners = new Set<{ memberDown?(member: Member): void }>();

  /** The ring requests are routed by: the primary's routing, as last received. */
  get routing(): Ring {
    return this.#routing;
  }

  /** The version of the snapshot routed by; undefined before the first. */
  get version(): number | undefined {
    return this.#version;
  }

  member(name: string): Member | undefined {
    return this.#known.get(name);
  }

  listen(listener: { memberDown?(member: Member): void }): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Routes by `snapshot` from now on and tells listeners which members left
   * the routing. Throws (and keeps the old routing) if its table does not fit.
   */
  apply(snapshot: RoutingSnapshot): Ring {
    const next = routingRing(snapshot);
    const previous = this.#routing;
    const previousKnown = this.#known;
    this.#known = new Map(snapshot.known.map((m) => [m.name, m]));
    this.#routing = next;
    this.#version = snapshot.version;
    for (const name of previous.members) {
      if (next.has(name)) continue;
      const member = this.#known.get(name) ?? ({ ...(previousKnown.get(name) as Member), state: "left" } as Member);
      for (const listener of this.#listeners) listener.memberDown?.(member);
    }
    return next;
  }
}
