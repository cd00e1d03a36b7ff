/**
 * What the primary and its worker processes say to each other over the
 * node:cluster IPC channel ("advanced" serialization, so the ring table
 * travels as a typed array).
 */
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Config } from "../config.ts";
import type { Member } from "../membership/source.ts";
import type { RingConfig } from "../ring/ring.ts";

/** A finished ring and the member records it refers to: all a worker needs to route. */
export interface RingMessage {
  /** Every member the source reported (name, url, state, tags), in the ring or not. */
  known: Member[];
  /** Ring members, in ring order. */
  members: string[];
  config: RingConfig;
  /** Entry p·ownerCount + r indexes `members` (Ring.table). */
  table: Uint32Array;
  /** The primary's checksum of this ring; the worker's must equal it. */
  checksum: string;
}

export type ToWorker =
  | { type: "ringroute:start"; config: Config; ring: RingMessage }
  | { type: "ringroute:ring"; ring: RingMessage }
  | { type: "ringroute:scrape"; id: number }
  | { type: "ringroute:drain"; timeout: number };

export type FromWorker =
  /** The worker's message listener is in place; send it the start message. */
  | { type: "ringroute:hello" }
  | { type: "ringroute:listening"; address: { address: string; family: string; port: number } }
  | { type: "ringroute:listen-failed"; code: string }
  /** The ring the worker now routes by, with the checksum it computed itself. */
  | { type: "ringroute:ring-applied"; checksum: string; error?: string }
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
