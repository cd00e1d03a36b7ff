/**
 * The listener side of a running proxy, the same in one process and in each
 * worker: the proxy engine with the config's key, proxy settings and TLS
 * material, reporting to the metrics, the access log and the log (an
 * ejection and its end), and a reload's live parts applied to it.
 */
import type { AddressInfo } from "node:net";
import type { Metrics } from "../admin/metrics.ts";
import type { AccessLog } from "../commands/logging.ts";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import type { AccessRecord, ProxyObserver } from "../proxy/observer.ts";
import { createProxy, type ProxyCluster, type RoutingProxy, type TlsMaterial } from "../proxy/server.ts";
import type { Clock } from "../utils/clock.ts";
import type { Logger } from "../utils/logger.ts";
import type { ReloadPlan } from "./reload.ts";

export interface ListenerOptions {
  /** What requests are routed by: the Cluster in one process, the primary's snapshot in a worker. */
  cluster: ProxyCluster;
  /** Traffic metrics (requests, upstream errors, failovers, ejections). */
  metrics: Metrics;
  /** The access log for a config's `access` section. */
  accessLog: (access: Config["access"]) => AccessLog | undefined;
  /** The config's TLS files, read (by the primary, with workers). */
  tls: TlsMaterial | undefined;
  logger: Logger;
  clock: Clock;
}

export interface Listener {
  proxy: RoutingProxy;
  /** Binds `config.listen`; an address that cannot be bound is a ConfigError naming `listen`. */
  listen(): Promise<AddressInfo>;
  /** Applies the listener's part of a validated reload (key, proxy settings, TLS, access log). */
  reload(plan: ReloadPlan, tls: TlsMaterial | undefined): void;
  /** Stops accepting and finishes requests in flight within `timeout` ms; then closes the access log. */
  close(timeout: number): Promise<void>;
}

export function createListener(config: Config, options: ListenerOptions): Listener {
  const { metrics, clock } = options;
  const logger = options.logger.child({ component: "proxy" });
  let accessLog = options.accessLog(config.access);
  const observer = observe(metrics, logger, (record) => accessLog?.write(record));
  const proxy = createProxy({
    cluster: options.cluster,
    config: { key: config.key, proxy: config.proxy, http2: config.http2 },
    observer,
    logger,
    clock,
    tls: options.tls,
  });
  // The proxy reports an ejection, not its end: a look each second at who is still skipped logs each return.
  let ejectedBefore = new Set<string>();
  let stopWatching = () => {};
  const watchEjections = () => {
    const now = new Set(proxy.ejected());
    for (const member of ejectedBefore) {
      if (!now.has(member)) logger.info({ member }, "member back from ejection");
    }
    ejectedBefore = now;
    stopWatching = clock.setTimer(watchEjections, 1000);
  };
  watchEjections();
  return {
    proxy,
    async listen() {
      try {
        return await proxy.listen(config.listen.port, config.listen.host);
      } catch (error) {
        throw bindError("listen", config.listen, error);
      }
    },
    reload(plan, tls) {
      if (plan.listener) proxy.reconfigure(plan.running.proxy, plan.running.key, plan.running.http2);
      if (plan.tls && tls !== undefined) proxy.reloadTls(tls);
      if (plan.access) {
        accessLog?.close();
        accessLog = options.accessLog(plan.running.access);
      }
    },
    async close(timeout) {
      stopWatching();
      await proxy.close(timeout);
      accessLog?.close();
    },
  };
}

/** The ConfigError for an address that cannot be bound, naming its field; other errors as they are. */
export function bindError(field: string, address: { host: string; port: number }, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL" || code === "ENOTFOUND") {
    return new ConfigError(field, `cannot listen on ${address.host}:${address.port} (${code})`);
  }
  return error;
}

/** The metrics as the proxy's observer, plus the access log and a log line a ejection. */
function observe(metrics: Metrics, logger: Logger, access: (record: AccessRecord) => void): ProxyObserver {
  return {
    requestStarted: () => metrics.requestStarted(),
    requestEnded: () => metrics.requestEnded(),
    request: (member, method, status, seconds, protocol) => metrics.request(member, method, status, seconds, protocol),
    upstreamError: (member, reason) => metrics.upstreamError(member, reason),
    clientError: (reason) => metrics.clientError(reason),
    queueTimeout: (member) => metrics.queueTimeout(member),
    failover: () => metrics.failover(),
    ejection(member) {
      metrics.ejection(member);
      logger.warn({ member }, "member ejected: failing repeatedly, skipped for a while");
    },
    access,
  };
}
