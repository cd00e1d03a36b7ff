/**
 * What a host of a running proxy offers (in one process or with workers),
 * and the parts of its life both hosts share: counting reloads, and the
 * first steps of a graceful stop.
 */
import type { AddressInfo } from "node:net";
import { Counter, type Registry } from "prom-client";
import type { AdminServer } from "../admin/server.ts";
import type { Cluster } from "../cluster.ts";
import type { AccessLog, Logging } from "../commands/logging.ts";
import type { Config } from "../config.ts";
import type { DemoBackend } from "../demo/backends.ts";
import type { Clock } from "../utils/clock.ts";
import type { Logger } from "../utils/logger.ts";
import { bindError } from "./listener.ts";
import type { Reloaded } from "./reload.ts";

export type { Reloaded } from "./reload.ts";

/** A worker process as /ring shows it: the routing version it routes by. */
export interface WorkerStatus {
  pid: number;
  /** The routing version the worker last reported routing by; null before its first. */
  version: number | null;
  /** Whether that is the primary's latest. */
  inSync: boolean;
  error?: string;
}

/** A running `ringroute serve`: proxy, admin server, cluster and (with no membership) demo backends. */
export interface Serving {
  proxy: AddressInfo;
  admin: AddressInfo;
  cluster: Cluster;
  demo: DemoBackend[];
  /**
   * Applies a new config (SIGHUP), or the config a loader returns: what
   * changed live, and what waits for a restart. An invalid config (the
   * loader throws, a file cannot be read) changes nothing, is counted in
   * `ringroute_config_reloads_total{result="invalid"}` and is thrown.
   */
  reload(next: Config | (() => Config)): Promise<Reloaded>;
  /**
   * Graceful shutdown: /readyz turns 503, traffic is served on for
   * `shutdownDelay`, then the proxy stops accepting and requests in flight get
   * `shutdownTimeout` to finish; then everything closes.
   */
  close(): Promise<void>;
  /** Worker processes running now (none in one process), each with the routing version it routes by. */
  workers(): WorkerStatus[];
}

export interface ServingOptions {
  logger?: Logger;
  /** Sets the log level of every component on reload (the Logging made by `serve`). */
  setLogLevel?: Logging["setLevel"];
  /** Access-log writer for a config's `access` section; default: one JSON line a request on stdout. */
  accessLog?: (access: Config["access"]) => AccessLog | undefined;
  clock?: Clock;
}

/** `ringroute_config_reloads_total{result}` on `registry`, wrapped around a host's reload. */
export function countedReloads(
  registry: Registry,
  reload: (next: Config | (() => Config)) => Promise<Reloaded>,
): (next: Config | (() => Config)) => Promise<Reloaded> {
  const reloads = new Counter({
    name: "ringroute_config_reloads_total",
    help: "Config reloads (SIGHUP) by result: applied, or invalid (the running config stays).",
    labelNames: ["result"],
    registers: [registry],
  });
  reloads.inc({ result: "applied" }, 0);
  reloads.inc({ result: "invalid" }, 0);
  return async (next) => {
    try {
      const reloaded = await reload(next);
      reloads.inc({ result: "applied" });
      return reloaded;
    } catch (error) {
      reloads.inc({ result: "invalid" });
      throw error;
    }
  };
}

/**
 * The start of a graceful stop, the same in both hosts: /readyz answers 503,
 * and traffic is served on for `shutdownDelay` so load balancers notice first.
 */
export async function announceShutdown(
  config: Config,
  admin: AdminServer,
  logger: Logger,
  clock: Clock,
): Promise<void> {
  admin.draining();
  if (config.shutdownDelay > 0) {
    logger.info(
      { shutdownDelay: config.shutdownDelay },
      "draining: /readyz answers 503, serving on so load balancers notice first",
    );
    await new Promise<void>((resolve) => clock.setTimer(resolve, config.shutdownDelay));
  }
  logger.info({ shutdownTimeout: config.shutdownTimeout }, "stopped accepting; finishing requests in flight");
}

/** Binds the admin server on `config.admin`, in either host; an address that cannot be bound is a ConfigError naming `admin`. */
export function listenAdmin(admin: AdminServer, config: Config): Promise<AddressInfo> {
  return admin.listen(config.admin.port, config.admin.host).catch((error) => {
    throw bindError("admin", config.admin, error);
  });
}
