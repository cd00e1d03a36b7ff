import { Gauge, Histogram, type Registry } from "prom-client";
import type { Cluster } from "../cluster.ts";

/**
 * The hand-off metrics: ring version, stable version, slots in hand-off and
 * how long each took as this process saw it (from the version's arrival to
 * the new owner's ready mark). Versions read 0 without a coordinating source.
 */
export function registerHandoffMetrics(cluster: Cluster, registers: Registry[]): void {
  new Gauge({
    name: "ringroute_ring_version",
    help: "The latest ring version the leader published (etcd, coordinated hand-offs); 0 without one.",
    registers,
    collect() {
      this.set(cluster.version ?? 0);
    },
  });
  new Gauge({
    name: "ringroute_stable_version",
    help: "The latest ring version every one of its members finished; 0 without one.",
    registers,
    collect() {
      this.set(cluster.stableVersion ?? 0);
    },
  });
  new Gauge({
    name: "ringroute_partitions_in_handoff",
    help: "(partition, replica rank) slots still routed to their old owner until the new owner has them ready.",
    registers,
    collect() {
      this.set(cluster.coordination?.partitionsInHandoff ?? 0);
    },
  });
  const durations = new Histogram({
    name: "ringroute_handoff_duration_seconds",
    help: "Time from a ring version's arrival to the new owner's ready mark, per (partition, rank) slot.",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const coordination = cluster.coordination;
  if (coordination) coordination.onHandoff = (seconds) => durations.observe(seconds);
}
