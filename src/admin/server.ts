/**
 * The admin server, on its own port (loopback by default) so traffic never
 * reaches it: the ring page (/), /metrics, /healthz, /readyz, /ring,
 * /events, /changes (the last 100 ring changes) and /plan.
 */

import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Cluster } from "../cluster.ts";
import { comparePlan, ringAfter } from "../commands/plan.ts";
import { memberList } from "../commands/ring-flags.ts";
import { ConfigError } from "../errors/config-error.ts";
import type { RoutingTable } from "../handoff/table.ts";
import { diff } from "../ring/diff.ts";
import type { Ring } from "../ring/ring.ts";
import type { Clock } from "../utils/clock.ts";
import { listen } from "../utils/listen.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { EventStream, EventTypeError, parseTypes } from "./events.ts";
import type { Metrics } from "./metrics.ts";
import { Readiness } from "./readiness.ts";
import { exampleKeys, parseTableForm, ringJson, routedCompact, TableFormError } from "./ring-view.ts";

export { ringJson } from "./ring-view.ts";

export interface AdminOptions {
  cluster: Cluster;
  metrics: Metrics;
  /** Members the proxy is skipping right now (shown in /ring). */
  ejected?: () => string[];
  /** Whether a down membership source makes /readyz 503 (config `readiness.sourceDown`; default "ready"). */
  readiness?: { sourceDown: "ready" | "unready" };
  clock?: Clock;
  logger?: Logger;
  /** Event stream settings (history size, heartbeat). */
  events?: { heartbeatMs?: number; historyBytes?: number };
  /** More fields for /ring (with workers: each worker's pid and ring checksum). */
  ring?: () => Record<string, unknown>;
}

export interface AdminServer {
  readonly server: Server;
  readonly readiness: Readiness;
  readonly events: EventStream;
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Shutdown has begun: /readyz answers 503 from now on, while everything else keeps answering. */
  draining(): void;
  close(): Promise<void>;
}

/**
 * The ring page's files, shipped as they are (no build step) in
 * src/admin/page/. The same relative path finds them from src/admin (tsx)
 * and from dist/admin (after the build), as package.json's `files` ships src/admin/page.
 */
const pageDir = new URL("../../src/admin/page/", import.meta.url);
const pageFiles: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/page.js": { file: "page.js", type: "text/javascript; charset=utf-8" },
  "/page.css": { file: "page.css", type: "text/css; charset=utf-8" },
};

export function createAdminServer(options: AdminOptions): AdminServer {
  const { cluster, metrics } = options;
  const logger = options.logger ?? silentLogger;
  const ejected = options.ejected ?? (() => []);
  const events = new EventStream(cluster, { clock: options.clock, logger, ...options.events });
  const readiness = new Readiness(cluster, {
    sourceDown: options.readiness?.sourceDown,
    clock: options.clock,
    logger,
  });
  const pages = new Map<string, Promise<Buffer>>();
  const compactTables = new WeakMap<Ring, string>();
  const routedTables = new WeakMap<RoutingTable, ReturnType<typeof routedCompact>>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(text);
  };

  function plan(url: URL, res: ServerResponse): void {
    const names = (param: string) => memberList(url.searchParams.getAll(param).join(","));
    const added = names("add");
    const removed = names("remove");
    const before = cluster.ring;
    try {
      for (const [field, list] of [
        ["add", added],
        ["remove", removed],
      ] as const) {
        if (list.includes("")) throw new ConfigError(field, "empty member name");
        if (new Set(list).size !== list.length) throw new ConfigError(field, "a member is named twice");
      }
      const after = ringAfter(before, added, removed);
      const moved = diff(before, after)
        .filter((e) => e.type === "acquire" && e.replica === 0)
        .map((e) => e.partition);
      json(res, 200, {
        ...comparePlan(before, after, added, removed),
        checksum: before.checksum,
        afterChecksum: after.checksum,
        /** Partitions whose primary would change. */
        movedPartitions: moved,
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const field = error.field.replace(/^--/, "");
      json(res, 400, { error: "bad_request", field, message: error.message });
    }
  }

  async function page(res: ServerResponse, path: string, head: boolean): Promise<void> {
    const entry = pageFiles[path] as { file: string; type: string };
    let body = pages.get(entry.file);
    if (body === undefined) {
      body = readFile(new URL(entry.file, pageDir));
      pages.set(entry.file, body);
      body.catch(() => pages.delete(entry.file));
    }
    const bytes = await body;
    res.writeHead(200, { "content-type": entry.type, "content-length": bytes.length, "cache-control": "no-cache" });
    res.end(head ? undefined : bytes);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://admin");
    const path = url.pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: "method_not_allowed", message: "the admin server answers GET only" });
      return;
    }
    if (Object.hasOwn(pageFiles, path)) {
      await page(res, path, req.method === "HEAD");
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
        const report = readiness.report();
        json(res, report.ready ? 200 : 503, report);
        return;
      }
      case "/ring": {
        let table: ReturnType<typeof parseTableForm>;
        try {
          table = parseTableForm(url.searchParams.get("table"));
        } catch (error) {
          if (!(error instanceof TableFormError)) throw error;
          json(res, 400, { error: "bad_request", field: "table", message: error.message });
          return;
        }
        const view = { ejected: ejected(), totals: metrics.memberTotals() };
        if (table !== "compact") {
          json(res, 200, { ...ringJson(cluster, { ...view, table }), ...options.ring?.() });
          return;
        }
        // The compact table is the same for every page load until the ring changes: encoded once.
        const ring = cluster.ring;
        let encoded = compactTables.get(ring);
        if (encoded === undefined) {
          encoded = `[${ring.table.join(",")}]`;
          compactTables.set(ring, encoded);
        }
        // Under coordinated hand-offs the page shows what is routed: that table comes along.
        const routing = cluster.routing;
        let routed = routing.coordinated ? routedTables.get(routing) : undefined;
        if (routing.coordinated && routed === undefined) {
          routed = routedCompact(routing);
          routedTables.set(routing, routed);
        }
        const body = {
          ...ringJson(cluster, { ...view, table: "none" }),
          ...options.ring?.(),
          ringMembers: ring.members,
          ownerCount: ring.ownerCount,
          ...(routed === undefined ? {} : { routed }),
        };
        res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
        res.end(`${JSON.stringify(body).slice(0, -1)},"table":${encoded}}`);
        return;
      }
      case "/plan":
        plan(url, res);
        return;
      case "/changes":
        json(res, 200, { changes: events.changes });
        return;
      case "/partition": {
        const routing = cluster.routing;
        const ring = routing.ring;
        const raw = url.searchParams.get("p") ?? "";
        const p = /^\d+$/.test(raw) ? Number(raw) : -1;
        if (p < 0 || p >= ring.config.partitions) {
          const message = `must be a partition number from 0 to ${ring.config.partitions - 1}, got ${JSON.stringify(raw)}`;
          json(res, 400, { error: "bad_request", field: "p", message });
          return;
        }
        const routed = Array.from({ length: routing.ranks }, (_, r) => routing.member(p, r) ?? null);
        json(res, 200, { partition: p, owners: ring.ownersOfPartition(p), routed, examples: exampleKeys(ring, p) });
        return;
      }
      case "/events": {
        let types: ReturnType<typeof parseTypes>;
        try {
          types = parseTypes(url.searchParams.get("types"));
        } catch (error) {
          if (!(error instanceof EventTypeError)) throw error;
          json(res, 400, { error: "bad_request", field: "types", message: error.message });
          return;
        }
        events.subscribe(req, res, types);
        return;
      }
      default:
        json(res, 404, {
          error: "not_found",
          message: "try /, /metrics, /healthz, /readyz, /ring, /events, /changes or /plan",
        });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      logger.error({ err: error, path: req.url }, "admin request failed");
      if (res.headersSent) res.destroy();
      else json(res, 500, { error: "internal_error", message: "see the log" });
    });
  });

  return {
    server,
    readiness,
    events,
    listen: (port: number, host?: string) => listen(server, port, host),
    draining: () => readiness.shutdown(),
    close(): Promise<void> {
      events.close();
      readiness.close();
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
