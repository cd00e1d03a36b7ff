// The library's whole public surface. Everything else is internal.

export { Metrics } from "./admin/metrics.ts";
// The proxy and its admin server, for embedding.
export { type AdminServer, createAdminServer } from "./admin/server.ts";
// Membership: sources produce whole snapshots; a Cluster turns them into rings and events.
export { Cluster, type ClusterListener, type ClusterOptions, type SourceState } from "./cluster.ts";
export { type Config, defaultConfig, type KeySource, parseConfig } from "./config.ts";
// The ring: an immutable partition table and the exact moves between two of them.
export { ConfigError } from "./errors/config-error.ts";
export { KeyError } from "./errors/key-error.ts";
export { SerfRpcError } from "./errors/serf-rpc-error.ts";
export { SourceError } from "./errors/source-error.ts";
export type { Coordination } from "./handoff/coordination.ts";
export type { HandoffDoc, VersionDoc } from "./handoff/documents.ts";
export { type PublishedState, routingTable } from "./handoff/routing.ts";
export type { HandoffHandlers, HandoffStep } from "./handoff/runner.ts";
export { noneReady, type RoutingMessage, RoutingTable, type SlotState } from "./handoff/table.ts";
export { type MembershipConfig, parseMembershipConfig } from "./membership/config.ts";
export { type DnsConfig, DnsSource, defaultDnsConfig } from "./membership/dns.ts";
export { type EtcdConfig, parseEtcdConfig } from "./membership/etcd/config.ts";
export { EtcdMember, type EtcdMemberOptions } from "./membership/etcd/member.ts";
export { EtcdSource, type EtcdSourceOptions } from "./membership/etcd/source.ts";
export { FileSource, type FileSourceOptions, parseMembersFile } from "./membership/file.ts";
export {
  defaultHealthCheckOptions,
  HealthCheckedSource,
  type HealthCheckedSourceOptions,
  type HealthCheckOptions,
} from "./membership/health.ts";
export { createSource } from "./membership/index.ts";
export { defaultSerfSourceOptions, SerfSource, type SerfSourceOptions } from "./membership/serf/source.ts";
export type { Member, MemberState, MembershipSource, SnapshotSink } from "./membership/source.ts";
export { type StaticMember, StaticSource } from "./membership/static.ts";
export type { AccessRecord, ProxyObserver, UpstreamFailure } from "./proxy/observer.ts";
export {
  createProxy,
  type ProxyCluster,
  type ProxyOptions,
  type RoutingProxy,
  type TlsMaterial,
} from "./proxy/server.ts";
export type { Acquire, Movement, PartitionEvent, Release } from "./ring/diff.ts";
export { diff, movement } from "./ring/diff.ts";
export type { MemberOrder } from "./ring/order.ts";
// Built-in placements by name; pass your own Placement function as `placement` to Ring.build or a Cluster.
export {
  type BalanceFactor,
  type Placement,
  type PlacementName,
  type PlacementOptions,
  placements,
} from "./ring/placement/index.ts";
export { defaultRingConfig, Ring, type RingConfig } from "./ring/ring.ts";
// Ring builds on a worker thread, for ClusterOptions.build.
export { RingBuilder, type RingBuilderOptions } from "./serving/ring-builder.ts";
