/**
 * What the primary and its worker processes say to each other over the
 * node:cluster IPC channel ("advanced" serialization, so the routing table
 * travels as a typed array and TLS material as bytes).
 */
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Config } from "../../config.ts";
import type { TlsMaterial } from "../../proxy/server.ts";
import type { RoutingSnapshot } from "../routing-snapshot.ts";

export type ToWorker =
  /**
   * Everything a listener needs: the config, its TLS files read by the primary, the routing;
   * `silent` when the primary was given no logger (a library caller): the worker logs nothing.
   */
  | { type: "ringroute:start"; config: Config; tls: TlsMaterial | undefined; routing: RoutingSnapshot; silent: boolean }
  | { type: "ringroute:routing"; routing: RoutingSnapshot }
  /** A reload the primary validated: apply what can change live. */
  | { type: "ringroute:reload"; id: number; config: Config; tls: TlsMaterial | undefined }
  | { type: "ringroute:scrape"; id: number }
  /** A client connection the primary accepted, sent with the message as its handle. */
  | { type: "ringroute:connection" }
  | { type: "ringroute:drain"; timeout: number };

export type FromWorker =
  /** The worker's message listener is in place; send it the start message. */
  | { type: "ringroute:hello" }
  /** The listener is in place: send connections. */
  | { type: "ringroute:ready" }
  /** The routing version the worker now routes by; with `error`, the one it kept. */
  | { type: "ringroute:routing-applied"; version: number | null; error?: string }
  | { type: "ringroute:reloaded"; id: number; error?: string }
  /** Whole access-log lines, batched: the primary alone writes stdout, so lines never interleave. */
  | { type: "ringroute:access"; lines: string }
  | { type: "ringroute:scrape"; id: number; metrics: WorkerMetricsJson; ejected: string[] };

export function isMessage<T extends { type: string }>(message: unknown): message is T {
  return (
    typeof message === "object" &&
    message !== null &&
    typeof (message as { type?: unknown }).type === "string" &&
    (message as { type: string }).type.startsWith("ringroute:")
  );
}

/** One worker's registry, as `registry.getMetricsAsJSON()` gives it. */
export type WorkerMetricsJson = MetricObjectWithValues<MetricValue<string>>[];
