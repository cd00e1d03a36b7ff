/**
 * The admin server, on its own port (loopback by default) so traffic never
 * reaches it: /metrics, /healthz, /readyz, /ring and /events.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Cluster } from "../cluster.ts";
import { listen } from "../utils/listen.ts";
import { EventStream } from "./events.ts";
import type { Metrics } from "./metrics.ts";

export interface AdminOptions {
  cluster: Cluster;
  metrics: Metrics;
  /** Members the proxy is skipping right now (shown in /ring). */
  ejected?: () => string[];
  /** More fields for /ring (with workers: each worker's pid and ring checksum). */
  ring?: () => Record<string, unknown>;
}

export interface AdminServer {
  readonly server: Server;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** What GET /ring answers. */
export function ringJson(cluster: Cluster, ejected: readonly string[]) {
  const ring = cluster.ring;
  const skipped = new Set(ejected);
  const table: (readonly string[])[] = [];
  for (let p = 0; p < ring.config.partitions; p++) table.push(ring.ownersOfPartition(p));
  return {
    config: ring.config,
    checksum: ring.checksum,
    synced: cluster.synced,
    source: { kind: cluster.sourceKind, up: cluster.sourceUp },
    members: cluster.knownMembers().map((m) => ({
      name: m.name,
      url: m.url,
      state: m.state,
      tags: m.tags,
      inRing: ring.has(m.name),
      ejected: skipped.has(m.name),
      /** Partitions held at each rank, primary first. */
      partitions: ring.loads.get(m.name) ?? [],
    })),
    table,
  };
}

export function createAdminServer(options: AdminOptions): AdminServer {
  const { cluster, metrics } = options;
  const ejected = options.ejected ?? (() => []);
  const events = new EventStream(cluster);

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(text);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: "method_not_allowed", message: "the admin server answers GET only" });
      return;
    }
    switch (path) {
      case "/metrics": {
        const text = await metrics.text();
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
        return;
      }
      case "/healthz":
        json(res, 200, { status: "ok" });
        return;
      case "/readyz": {
        const ready = cluster.synced && cluster.size > 0;
        json(res, ready ? 200 : 503, { ready, synced: cluster.synced, members: cluster.size });
        return;
      }
      case "/ring":
        json(res, 200, { ...ringJson(cluster, ejected()), ...options.ring?.() });
        return;
      case "/events":
        events.subscribe(res);
        return;
      default:
        json(res, 404, { error: "not_found", message: "try /metrics, /healthz, /readyz, /ring or /events" });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => json(res, 500, { error: "internal_error", message: String(error) }));
  });

  return {
    server,
    listen: (port: number, host?: string) => listen(server, port, host),
    close(): Promise<void> {
      events.close();
      return new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
