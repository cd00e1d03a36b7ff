import type { RoutingTable } from "./table.ts";

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
  /** Slots (partition, rank) not yet ready at their owner: moving (old owner still routed to) or none ready. */
  readonly partitionsInHandoff: number;
  /**
   * Why no version can come, when that is so: e.g. no member takes part in
   * the election (members registered without the protocol). Undefined otherwise.
   */
  readonly stalled: string | undefined;
  /** Milliseconds a request waits for a slot none holds ready before 503 partition_moving. */
  readonly handoffWait: number;
  /** The table to route by (from the routing rule); undefined before the first version. */
  routing(): RoutingTable | undefined;
  /** Called with each slot's hand-off duration in seconds (as this process saw it) when it settles. */
  onHandoff?: ((seconds: number) => void) | undefined;
}
