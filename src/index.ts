// The library's whole public surface. Everything else is internal.

export { Metrics } from "./admin/metrics.ts";
// The proxy and its admin server, for embedding.
export { type AdminServer, createAdminServer } from "./admin/server.ts";
// Membership: sources produce whole snapshots; a Cluster turns them into rings and events.
export { Cluster, type ClusterListener, type ClusterOptions } from "./cluster.ts";
export { type Config, defaultConfig, loadConfig, parseConfig } from "./config.ts";
// The ring: an immutable partition table and the exact moves between two of them.
export { ConfigError } from "./errors/config-error.ts";
export { KeyError } from "./errors/key-error.ts";
export { type MembershipConfig, parseMembershipConfig } from "./membership/config.ts";
export { type DnsConfig, DnsSource, defaultDnsConfig } from "./membership/dns.ts";
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
export type { Placement, PlacementName } from "./ring/placement/index.ts";
export { defaultRingConfig, Ring, type RingConfig } from "./ring/ring.ts";
