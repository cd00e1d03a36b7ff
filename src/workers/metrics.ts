/**
 * The primary's /metrics with workers: its own registry (membership, ring,
 * worker restarts) plus every worker's (requests, upstream errors, process
 * metrics), combined by prom-client's AggregatorRegistry: counters and
 * histograms summed across workers.
 */
import { AggregatorRegistry, Counter } from "prom-client";
import { Metrics } from "../admin/metrics.ts";
import type { Cluster } from "../cluster.ts";
import type { WorkerMetricsJson } from "./messages.ts";

/** What one worker answers to a scrape. */
export interface WorkerScrape {
  metrics: WorkerMetricsJson;
  ejected: string[];
}

/**
 * Metrics that describe the cluster, not traffic: every worker reports the
 * same values (from the ring it was sent), so the primary's alone count;
 * summed, a gauge like ringroute_member_up would read 3 with two workers.
 * The primary's member_up already counts a member any worker ejected.
 */
const primaryOnly = new Set([
  "ringroute_build_info",
  "ringroute_member_up",
  "ringroute_members",
  "ringroute_partitions_owned",
  "ringroute_ring_info",
  "ringroute_membership_source_up",
  "ringroute_membership_source_errors_total",
  "ringroute_ring_changes_total",
  "ringroute_partition_moves_total",
  "ringroute_ring_version",
  "ringroute_stable_version",
  "ringroute_partitions_in_handoff",
]);

export class WorkerMetrics extends Metrics {
  readonly restarts: Counter;
  readonly #scrape: () => Promise<WorkerScrape[]>;
  /** Ejected members as the workers last reported them (each worker judges for itself). */
  readonly #ejected: { members: string[] };

  constructor(cluster: Cluster, scrape: () => Promise<WorkerScrape[]>) {
    // Ejection is each worker's own judgement; a member any worker skips counts as ejected.
    const ejected = { members: [] as string[] };
    super(cluster, { ejected: () => ejected.members });
    this.#ejected = ejected;
    this.#scrape = scrape;
    this.restarts = new Counter({
      name: "ringroute_worker_restarts_total",
      help: "Worker processes that died and were replaced.",
      registers: [this.registry],
    });
  }

  override async text(): Promise<string> {
    const workers = await this.#scrape();
    this.#ejected.members = [...new Set(workers.flatMap((w) => w.ejected))].sort();
    const own = await this.registry.getMetricsAsJSON();
    const theirs = workers.map((w) => w.metrics.filter((m) => !primaryOnly.has(m.name)));
    return AggregatorRegistry.aggregate([own, ...theirs]).metrics();
  }
}
