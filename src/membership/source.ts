/**
 * Membership sources. A source only ever reports whole snapshots of who is
 * in; the Cluster works out what changed. A source that fails reports that
 * it is down and nothing else, so the ring keeps its last good state.
 */

import type { Coordination } from "../handoff/coordination.ts";

/** What a source knows about a member. */
export interface Member {
  /** Unique, stable name; the ring sorts and hashes on it. */
  name: string;
  /** Where the proxy sends this member's requests, e.g. "http://10.0.0.5:8080". */
  url: string;
  /** How the proxy talks to this member: HTTP/1.1 (absent, "h1") or HTTP/2 over cleartext ("h2c", gRPC members). */
  protocol?: "h1" | "h2c";
  /** Labels from the source (Serf tags, DNS record data, config). */
  tags: Readonly<Record<string, string>>;
  /**
   * "alive" members are candidates for the ring; the others are known but
   * out: "failed" (health checks or gossip say so), "left" (gone on purpose).
   */
  state: MemberState;
}

export type MemberState = "alive" | "failed" | "left";

/** Where a source delivers what it learns; the Cluster implements it. */
export interface SnapshotSink {
  /** A complete, current view from a working source. Replaces the previous one. */
  snapshot(members: readonly Member[]): void;
  /** The source cannot currently tell who is in. The last snapshot stands. */
  down(error: Error): void;
}

export interface MembershipSource {
  /** Short label for logs and the `source` metric label: "static", "file", "serf", "dns". */
  readonly kind: string;
  /**
   * Begins watching and reporting to `sink`. Resolves once the source is
   * running (not necessarily after its first snapshot). Reconnecting after a
   * failure is the source's own job.
   */
  start(sink: SnapshotSink): Promise<void>;
  /** Stops watching, closes connections and timers. Idempotent. */
  stop(): Promise<void>;
  /**
   * Set by a source that coordinates hand-offs (etcd, `handoff: coordinated`):
   * its versions and the routing table. Without it, routing is the ring.
   */
  readonly coordination?: Coordination | undefined;
}
