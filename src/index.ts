// The library's whole public surface. Everything else is internal.

export { Cluster, type ClusterListener, type ClusterOptions } from "./cluster.ts";
export { ConfigError } from "./errors/config-error.ts";
export type { Member, MemberState, MembershipSource, SnapshotSink } from "./membership/source.ts";
export { type StaticMember, StaticSource } from "./membership/static.ts";
export type { Acquire, Movement, PartitionEvent, Release } from "./ring/diff.ts";
export { diff, movement } from "./ring/diff.ts";
export type { MemberOrder } from "./ring/order.ts";
export type { Placement, PlacementName } from "./ring/placement/index.ts";
export { defaultRingConfig, Ring, type RingConfig } from "./ring/ring.ts";
