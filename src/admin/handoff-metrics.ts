import { Gauge, Histogram, type Registry } from "prom-client";
import type { Cluster } from "../cluster.ts";
import { slotStates } from "../handoff/table.ts";

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
    help: "(partition, replica rank) slots not yet ready at their owner: routed to the old owner, or to nobody (requests wait).",
    registers,
    collect() {
      this.set(cluster.coordination?.partitionsInHandoff ?? 0);
    },
  });
  new Gauge({
    name: "ringroute_routing_slots",
    help: "(partition, replica rank) slots of the table requests are routed by, by state: ready at the owner, moving (old owner still routed to), none (nobody ready: requests wait).",
    labelNames: ["state"],
    registers,
    collect() {
      const { counts } = cluster.routing;
      for (const state of slotStates) this.set({ state }, counts[state]);
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
