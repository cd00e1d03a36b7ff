/**
 * Prometheus metrics (prom-client), prefix `ringroute_`. Labels stay
 * low-cardinality: member names, status codes, methods, reasons; never a key
 * or a path. Counters of a member that left are kept for `memberRetention`
 * (so its last increments are scraped), then dropped with all of its state,
 * so member-name churn (a new pod name each roll-out) does not grow memory;
 * Prometheus reads a series that stops as stale, not as a reset. Gauges show
 * current members only. The whole output passes `promtool check metrics`.
 */
import { readFileSync } from "node:fs";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { Cluster } from "../cluster.ts";
import type { Member } from "../membership/source.ts";
import type { ClientFailure, ClientProtocol, ProxyObserver, UpstreamFailure } from "../proxy/observer.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { registerHandoffMetrics } from "./handoff-metrics.ts";

/** Upper bounds of the request duration histogram, in seconds. */
const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface MemberStats {
  /** Responses by "METHOD status protocol". */
  responses: Map<string, number>;
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * `ringroute_requests_total` and `ringroute_request_duration_seconds`, kept
 * as plain numbers per member and rendered as prom-client metric objects.
 */
class RequestStats {
  readonly #members = new Map<string, MemberStats>();
  /** Called first at every collection (this metric is registered before the other labelled ones). */
  readonly #beforeCollect: () => void;

  constructor(beforeCollect: () => void) {
    this.#beforeCollect = beforeCollect;
  }

  record(member: string, method: string, status: number | string, seconds: number, protocol: string): void {
    let stats = this.#members.get(member);
    if (stats === undefined) {
      stats = { responses: new Map(), buckets: new Float64Array(buckets.length + 1), sum: 0, count: 0 };
      this.#members.set(member, stats);
    }
    const key = `${method} ${status} ${protocol}`;
    stats.responses.set(key, (stats.responses.get(key) ?? 0) + 1);
    let i = 0;
    while (i < buckets.length && seconds > (buckets[i] as number)) i++;
    stats.buckets[i] = (stats.buckets[i] as number) + 1;
    stats.sum += seconds;
    stats.count++;
  }

  /** Drops everything recorded for `member`. */
  forget(member: string): void {
    this.#members.delete(member);
  }

  /** Responses each member served so far. */
  totals(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const [member, stats] of this.#members) totals.set(member, stats.count);
    return totals;
  }

  requestsMetric() {
    const name = "ringroute_requests_total";
    const help =
      "Responses sent to clients, by the member that served them (none: ringroute answered), status code, method and the protocol the client spoke (http/1.1, h2).";
    const get = () => {
      this.#beforeCollect();
      const values: Sample[] = [];
      for (const [member, stats] of this.#members) {
        for (const [key, value] of stats.responses) {
          const [method, code, protocol] = key.split(" ") as [string, string, string];
          values.push({ value, labels: { member, code, method, protocol } });
        }
      }
      return { name, help, type: "counter", aggregator: "sum", values };
    };
    return { name, help, type: "counter", aggregator: "sum", get, reset: () => this.#members.clear() };
  }

  durationMetric() {
    const name = "ringroute_request_duration_seconds";
    const help = "Time from a request's arrival to the end of its response, by serving member.";
    const get = () => {
      const values: Sample[] = [];
      for (const [member, stats] of this.#members) {
        let cumulative = 0;
        for (let i = 0; i <= buckets.length; i++) {
          cumulative += stats.buckets[i] as number;
          const le = i < buckets.length ? (buckets[i] as number) : "+Inf";
          values.push({ value: cumulative, labels: { le, member }, metricName: `${name}_bucket` });
        }
        values.push({ value: stats.sum, labels: { member }, metricName: `${name}_sum` });
        values.push({ value: stats.count, labels: { member }, metricName: `${name}_count` });
      }
      return { name, help, type: "histogram", aggregator: "sum", values };
    };
    return { name, help, type: "histogram", aggregator: "sum", get, reset: () => this.#members.clear() };
  }
}

/**
 * prom-client's default gauges named like counters (promtool: non-counter
 * metrics should not have "_total" suffix). Each is the sum of the labelled
 * gauge without the suffix (`sum(nodejs_active_handles)`), so they are dropped.
 */
const misnamedDefaults = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/** The package's version, for ringroute_build_info; read from package.json next to src/ and dist/. */
function packageVersion(): string {
  try {
    const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    return String((JSON.parse(text) as { version?: unknown }).version ?? "unknown");
  } catch {
    return "unknown";
  }
}

/** Methods Node's parser accepts that are worth a label of their own; anything else is OTHER. */
const methods = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

export interface MetricsOptions {
  /** Where to register; a fresh Registry by default (so several proxies in one process do not clash). */
  registry?: Registry;
  /** Also collect prom-client's default process and Node metrics (default true). */
  defaultMetrics?: boolean;
  /** Members the proxy is skipping right now, for `ringroute_members{state="ejected"}`. */
  ejected?: () => string[];
  /** Milliseconds a departed member's series are kept (`metrics.memberRetention`; default 1 h). */
  memberRetention?: number;
  /** Without a cluster (a worker's traffic metrics): who leaves and comes back, for `memberRetention`. */
  members?: {
    listen(listener: { memberDown?(member: Member): void; memberUp?(member: Member): void }): () => void;
  };
  /** Time for the retention; default the system clock. */
  clock?: Clock;
}

export class Metrics implements ProxyObserver {
  readonly registry: Registry;
  /** Members the proxy skips right now (the `ejected` option). */
  readonly ejected: () => string[];
  readonly #upstreamErrors: Counter<"member" | "reason">;
  readonly #failovers: Counter;
  readonly #ejections: Counter<"member">;
  readonly #clientErrors: Counter<"reason">;
  readonly #queueTimeouts: Counter<"member">;
  // Departed members are pruned when a scrape starts, whichever way it reads the registry (workers send JSON).
  readonly #requestStats = new RequestStats(() => this.#prune());
  /** Failed tries per member, for the ring page. */
  readonly #errors = new Map<string, number>();
  /** The `reason` labels each member's upstream errors used (to remove exactly those series). */
  readonly #errorReasons = new Map<string, Set<UpstreamFailure>>();
  /** Members that left, with when; oldest first (a Map keeps insertion order, and each departure goes last). */
  readonly #departed = new Map<string, number>();
  readonly #retention: number;
  readonly #clock: Clock;
  #inFlight = 0;
  readonly #unsubscribe: () => void;

  /** `cluster` undefined: traffic metrics only, for a worker process whose primary reports the cluster. */
  constructor(cluster: Cluster | undefined, options: MetricsOptions = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    this.ejected = options.ejected ?? (() => []);
    this.#retention = options.memberRetention ?? 3_600_000;
    this.#clock = options.clock ?? systemClock;
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: registry });
      for (const name of misnamedDefaults) registry.removeSingleMetric(name);
    }
    const registers = [registry];

    // Counted in plain numbers on the hot path and turned into samples when scraped:
    // prom-client's labelled inc()/observe() hash the label set on every call.
    registry.registerMetric(this.#requestStats.requestsMetric() as never);
    registry.registerMetric(this.#requestStats.durationMetric() as never);
    this.#upstreamErrors = new Counter({
      name: "ringroute_upstream_errors_total",
      help: "Failed tries against a member, by reason: connect, reset, timeout, status (a retryable status code), bad_response (unparseable or over proxy.limits), error, refused (an h2c member refused a stream or dropped it unprocessed).",
      labelNames: ["member", "reason"],
      registers,
    });
    this.#failovers = new Counter({
      name: "ringroute_failovers_total",
      help: "Requests moved on to the next member of their preference list.",
      registers,
    });
    this.#clientErrors = new Counter({
      name: "ringroute_client_errors_total",
      help: "Requests that failed on the client's side, by reason: head_timeout, body_timeout, slow_reader, aborted, bad_request.",
      labelNames: ["reason"],
      registers,
    });
    this.#queueTimeouts = new Counter({
      name: "ringroute_queue_timeouts_total",
      help: "Requests answered 503 after waiting proxy.timeouts.queue for a connection to a member.",
      labelNames: ["member"],
      registers,
    });
    this.#ejections = new Counter({
      name: "ringroute_ejections_total",
      help: "Times a member was ejected (skipped for a while) after failing repeatedly.",
      labelNames: ["member"],
      registers,
    });

    const metrics = this;
    new Gauge({
      name: "ringroute_requests_in_flight",
      help: "Client requests received and not yet answered.",
      registers,
      collect() {
        this.set(metrics.#inFlight);
      },
    });
    // Traffic only (a worker process): the cluster's metrics come from one place, its primary.
    if (cluster === undefined) {
      this.#unsubscribe = options.members?.listen(this.#departures()) ?? (() => {});
      return;
    }
    new Gauge({
      name: "ringroute_build_info",
      help: "Always 1; the version label is ringroute's.",
      labelNames: ["version"],
      registers,
    }).set({ version: packageVersion() }, 1);
    new Gauge({
      name: "ringroute_member_up",
      help: "1 for each member in the ring the proxy routes to; 0 for a member the source reports down or the proxy ejected.",
      labelNames: ["member"],
      registers,
      collect() {
        this.reset();
        const ejected = new Set(metrics.ejected());
        for (const member of cluster.knownMembers()) {
          const up = member.state === "alive" && cluster.routing.has(member.name) && !ejected.has(member.name);
          this.set({ member: member.name }, up ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: "ringroute_members",
      help: "Members the membership source reports, by state (alive, failed, left), and alive members ejected by the proxy (ejected).",
      labelNames: ["state"],
      registers,
      collect() {
        const counts: Record<string, number> = { alive: 0, failed: 0, left: 0 };
        for (const member of cluster.knownMembers()) counts[member.state] = (counts[member.state] ?? 0) + 1;
        counts.ejected = metrics.ejected().length;
        for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
      },
    });
    new Gauge({
      name: "ringroute_partitions_owned",
      help: "Partitions each member holds at each replica rank (0: primary).",
      labelNames: ["member", "replica"],
      registers,
      collect() {
        this.reset();
        for (const [member, counts] of cluster.ring.loads) {
          for (let replica = 0; replica < counts.length; replica++) {
            this.set({ member, replica: String(replica) }, counts[replica] as number);
          }
        }
      },
    });
    new Gauge({
      name: "ringroute_ring_info",
      help: "Always 1; the labels describe the current ring.",
      labelNames: ["checksum", "placement", "hash"],
      registers,
      collect() {
        this.reset();
        const { checksum, placementName, config } = cluster.ring;
        this.set({ checksum, placement: placementName, hash: config.hash }, 1);
      },
    });
    new Gauge({
      name: "ringroute_membership_source_up",
      help: "1 while the membership source delivers, 0 after it reported an error.",
      labelNames: ["source"],
      registers,
      collect() {
        this.reset();
        this.set({ source: cluster.sourceKind }, cluster.sourceUp ? 1 : 0);
      },
    });
    const ringChanges = new Counter({
      name: "ringroute_ring_changes_total",
      help: "Times the ring was rebuilt because members joined or left.",
      registers,
    });
    const moves = new Counter({
      name: "ringroute_partition_moves_total",
      help: "(partition, replica rank) slots handed from one member to another by ring changes.",
      registers,
    });
    const sourceErrors = new Counter({
      name: "ringroute_membership_source_errors_total",
      help: "Times the membership source reported an error.",
      labelNames: ["source"],
      registers,
    });
    sourceErrors.inc({ source: cluster.sourceKind }, 0);
    registerHandoffMetrics(cluster, registers);

    this.#unsubscribe = cluster.listen({
      ring: () => ringChanges.inc(),
      acquire: (event) => {
        if (event.from !== null) moves.inc();
      },
      // Every failure counts, not just the one that took the source down.
      sourceError: () => sourceErrors.inc({ source: cluster.sourceKind }),
      ...this.#departures(),
    });
  }

  /** Members leaving and coming back, for `memberRetention`. */
  #departures(): { memberDown(member: Member): void; memberUp(member: Member): void } {
    return {
      memberDown: (member) => {
        this.#departed.delete(member.name);
        this.#departed.set(member.name, this.#clock.now());
        this.#prune();
      },
      memberUp: (member) => {
        this.#departed.delete(member.name);
      },
    };
  }

  /** Drops the series and state of members that left more than `memberRetention` ago. */
  #prune(): void {
    const cutoff = this.#clock.now() - this.#retention;
    for (const [member, at] of this.#departed) {
      if (at > cutoff) break;
      this.#departed.delete(member);
      this.#requestStats.forget(member);
      this.#errors.delete(member);
      for (const reason of this.#errorReasons.get(member) ?? []) this.#upstreamErrors.remove({ member, reason });
      this.#errorReasons.delete(member);
      this.#ejections.remove({ member });
      this.#queueTimeouts.remove({ member });
    }
  }

  request(
    member: string,
    method: string,
    status: number | "truncated",
    seconds: number,
    protocol: ClientProtocol = "http/1.1",
  ): void {
    this.#requestStats.record(member, methods.has(method) ? method : "OTHER", status, seconds, protocol);
  }

  requestStarted(): void {
    this.#inFlight++;
  }

  requestEnded(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  upstreamError(member: string, reason: UpstreamFailure): void {
    this.#errors.set(member, (this.#errors.get(member) ?? 0) + 1);
    const reasons = this.#errorReasons.get(member);
    if (reasons === undefined) this.#errorReasons.set(member, new Set([reason]));
    else reasons.add(reason);
    this.#upstreamErrors.inc({ member, reason });
  }

  clientError(reason: ClientFailure): void {
    this.#clientErrors.inc({ reason });
  }

  queueTimeout(member: string): void {
    this.#queueTimeouts.inc({ member });
  }

  failover(): void {
    this.#failovers.inc();
  }

  ejection(member: string): void {
    this.#ejections.inc({ member });
  }

  /** Responses served and failed tries per member so far, for the ring page's rates. */
  memberTotals(): Map<string, { requests: number; errors: number }> {
    this.#prune();
    const totals = new Map<string, { requests: number; errors: number }>();
    for (const [member, requests] of this.#requestStats.totals()) totals.set(member, { requests, errors: 0 });
    for (const [member, errors] of this.#errors) {
      totals.set(member, { requests: totals.get(member)?.requests ?? 0, errors });
    }
    return totals;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops following the cluster. */
  close(): void {
    this.#unsubscribe();
  }
}
