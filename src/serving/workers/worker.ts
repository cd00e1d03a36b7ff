/**
 * A worker process: the listener, composed as in one process (listener.ts),
 * serving the connections the primary accepted and routing by the snapshots
 * it sends. Its log lines carry its pid; its access lines go to the
 * primary in batches of whole lines. It applies the reloads the primary
 * validated, answers metric scrapes, and drains on the primary's word, on
 * SIGTERM/SIGINT, or when the primary goes away.
 */
import type { Socket } from "node:net";
import { Metrics } from "../../admin/metrics.ts";
import { type AccessLog, createAccessLog, createLogging, type Logging } from "../../commands/logging.ts";
import type { Config } from "../../config.ts";
import type { TlsMaterial } from "../../proxy/server.ts";
import { systemClock } from "../../utils/clock.ts";
import { silentLogger } from "../../utils/logger.ts";
import { createListener, type Listener } from "../listener.ts";
import { planReload } from "../reload.ts";
import type { RoutingSnapshot } from "../routing-snapshot.ts";
import { type FromWorker, isMessage, type ToWorker } from "./messages.ts";
import { WorkerView } from "./view.ts";

/** Access lines are sent once this many bytes are waiting, or each second. */
const accessBatchBytes = 16 * 1024;

export function runWorker(): void {
  const view = new WorkerView();
  let listener: Listener | undefined;
  let metrics: Metrics | undefined;
  let logging: Logging | undefined;
  let current: Config | undefined;
  let draining = false;

  const send = (message: FromWorker) => {
    if (process.connected) process.send?.(message);
  };

  const applyRouting = (routing: RoutingSnapshot) => {
    try {
      view.apply(routing);
      send({ type: "ringroute:routing-applied", version: routing.version });
    } catch (error) {
      // Keep routing by the old snapshot; the primary sees the old version and the error.
      send({ type: "ringroute:routing-applied", version: view.version ?? null, error: String(error) });
    }
  };

  // Whole lines, batched: one process (the primary) writes stdout, so workers' lines never interleave.
  let batch = "";
  const flushAccess = () => {
    if (batch === "") return;
    send({ type: "ringroute:access", lines: batch });
    batch = "";
  };
  const accessTimer = setInterval(flushAccess, 1000).unref();
  const toPrimary = {
    write(line: string) {
      batch += line;
      if (batch.length >= accessBatchBytes) flushAccess();
      return true;
    },
    flushSync: flushAccess,
  };
  const accessLog = (access: Config["access"]): AccessLog | undefined => createAccessLog(access, toPrimary);

  const start = async (config: Config, tls: TlsMaterial | undefined, routing: RoutingSnapshot, silent: boolean) => {
    current = config;
    // Every line carries this worker's pid (createLogging's base).
    logging = silent ? { logger: silentLogger, setLevel: () => {} } : await createLogging(config.log);
    const { logger } = logging;
    applyRouting(routing);
    // Traffic only: the cluster's gauges (members, ring, build info) come from the primary alone.
    metrics = new Metrics(undefined, {
      ejected: () => listener?.proxy.ejected() ?? [],
      memberRetention: config.metrics.memberRetention,
      members: view,
    });
    listener = createListener(config, { cluster: view, metrics, accessLog, tls, logger, clock: systemClock });
    logger.info("worker ready");
    send({ type: "ringroute:ready" });
  };

  const reload = (id: number, next: Config, tls: TlsMaterial | undefined) => {
    try {
      if (current === undefined || listener === undefined) throw new Error("not started");
      // The primary checked the config; this worker applies the same plan to its own listener.
      const plan = planReload(current, next, (c) => c.membership);
      if (plan.logLevel) logging?.setLevel(plan.running.log.level);
      listener.reload(plan, tls);
      current = plan.running;
      send({ type: "ringroute:reloaded", id });
    } catch (error) {
      send({ type: "ringroute:reloaded", id, error: String(error) });
    }
  };

  const drain = async (timeout: number) => {
    if (draining) return;
    draining = true;
    await listener?.close(timeout);
    clearInterval(accessTimer);
    flushAccess();
    metrics?.close();
    process.exit(0);
  };

  process.on("message", (message: unknown, handle: unknown) => {
    if (!isMessage<ToWorker>(message)) return; // prom-client's own messages, for instance
    switch (message.type) {
      case "ringroute:connection":
        // While draining too: a connection handed over just before the primary stopped accepting is served.
        if (listener === undefined) (handle as Socket).destroy();
        else listener.proxy.accept(handle as Socket);
        return;
      case "ringroute:start":
        void start(message.config, message.tls, message.routing, message.silent);
        return;
      case "ringroute:routing":
        applyRouting(message.routing);
        return;
      case "ringroute:reload":
        reload(message.id, message.config, message.tls);
        return;
      case "ringroute:scrape":
        void (metrics?.registry.getMetricsAsJSON() ?? Promise.resolve([])).then((json) =>
          send({ type: "ringroute:scrape", id: message.id, metrics: json, ejected: listener?.proxy.ejected() ?? [] }),
        );
        return;
      case "ringroute:drain":
        void drain(message.timeout);
        return;
    }
  });
  // A terminal's Ctrl-C reaches every process in the group: the primary says when to drain
  // (after its shutdownDelay); a worker drains on its own only when the primary goes away.
  for (const event of ["SIGTERM", "SIGINT"]) process.on(event, () => {});
  process.on("disconnect", () => void drain(current?.shutdownTimeout ?? 10_000));
  send({ type: "ringroute:hello" });
}
