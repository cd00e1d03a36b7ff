/**
 * A worker process: runs the proxy only, on node:cluster's shared listening
 * handle, routing by the rings the primary sends. It answers metric scrapes
 * and drains on the primary's word, on SIGTERM/SIGINT, or when the primary
 * goes away.
 */
import { Metrics } from "../admin/metrics.ts";
import type { Config } from "../config.ts";
import { createProxy, type RoutingProxy } from "../proxy/server.ts";
import { type FromWorker, isMessage, type RingMessage, type ToWorker } from "./messages.ts";
import { WorkerView } from "./view.ts";

export function runWorker(): void {
  const view = new WorkerView();
  let proxy: RoutingProxy | undefined;
  let metrics: Metrics | undefined;
  let shutdownTimeout = 10_000;
  let draining = false;

  const send = (message: FromWorker) => {
    if (process.connected) process.send?.(message);
  };

  const applyRing = (ring: RingMessage) => {
    try {
      send({ type: "ringroute:ring-applied", checksum: view.apply(ring).checksum });
    } catch (error) {
      // Keep routing by the old ring; the primary sees the old checksum and the error.
      send({ type: "ringroute:ring-applied", checksum: view.ring.checksum, error: String(error) });
    }
  };

  const start = async (config: Config, ring: RingMessage) => {
    shutdownTimeout = config.shutdownTimeout;
    applyRing(ring);
    metrics = new Metrics(view.asCluster(), {
      ejected: () => proxy?.ejected() ?? [],
      memberRetention: config.metrics.memberRetention,
    });
    proxy = createProxy({
      cluster: view.asCluster(),
      config: { key: config.key, proxy: config.proxy },
      observer: metrics,
    });
    try {
      const address = await proxy.listen(config.listen.port, config.listen.host);
      send({ type: "ringroute:listening", address });
    } catch (error) {
      send({ type: "ringroute:listen-failed", code: (error as NodeJS.ErrnoException).code ?? String(error) });
      process.exit(1);
    }
  };

  const drain = async (timeout: number) => {
    if (draining) return;
    draining = true;
    await proxy?.close(timeout);
    metrics?.close();
    process.exit(0);
  };

  process.on("message", (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return; // prom-client's own messages, for instance
    switch (message.type) {
      case "ringroute:start":
        void start(message.config, message.ring);
        return;
      case "ringroute:ring":
        applyRing(message.ring);
        return;
      case "ringroute:scrape":
        void (metrics?.registry.getMetricsAsJSON() ?? Promise.resolve([])).then((json) =>
          send({ type: "ringroute:scrape", id: message.id, metrics: json, ejected: proxy?.ejected() ?? [] }),
        );
        return;
      case "ringroute:drain":
        void drain(message.timeout);
        return;
    }
  });
  // A terminal's Ctrl-C reaches every process in the group: drain as the primary would ask.
  for (const event of ["SIGTERM", "SIGINT", "disconnect"]) process.on(event, () => void drain(shutdownTimeout));
  send({ type: "ringroute:hello" });
}
