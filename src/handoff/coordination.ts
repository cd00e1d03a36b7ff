import type { Ring } from "../ring/ring.ts";

/**
 * What a coordinating source (etcd with `handoff: coordinated`) tells the
 * Cluster beyond snapshots: the leader's ring versions and where the
 * hand-offs stand. The Cluster reads it; it never drives it.
 */
export interface Coordination {
  /** The latest version the leader published; undefined before the first. */
  readonly version: number | undefined;
  /** The latest version every one of its members reported done. */
  readonly stableVersion: number | undefined;
  /** Every member of the latest version reports having finished it. */
  readonly consistent: boolean;
  /** Slots (partition, rank) still routed to their old owner. */
  readonly partitionsInHandoff: number;
  /** The ring to route by (old owners kept until new ones are ready); undefined before the first version. */
  routing(): Ring | undefined;
  /** Called with each slot's hand-off duration in seconds (as this process saw it) when it settles. */
  onHandoff?: ((seconds: number) => void) | undefined;
}
