/**
 * The primary's /metrics with workers: its own registry (membership, ring,
 * build info, reloads, worker restarts) plus every worker's traffic metrics
 * (requests, upstream errors, process metrics), combined by prom-client's
 * AggregatorRegistry: counters and histograms summed across workers. A
 * worker registers no cluster metric, so those come from the primary alone.
 */
import { AggregatorRegistry, Counter } from "prom-client";
import { Metrics } from "../../admin/metrics.ts";
import type { Cluster } from "../../cluster.ts";
import type { WorkerMetricsJson } from "./messages.ts";

/** What one worker answers to a scrape. */
export interface WorkerScrape {
  metrics: WorkerMetricsJson;
  ejected: string[];
}

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
    const theirs = workers.map((w) => w.metrics);
    return AggregatorRegistry.aggregate([own, ...theirs]).metrics();
  }
}
