import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Counter } from "prom-client";
import { Metrics } from "../admin/metrics.ts";
import { createAdminServer } from "../admin/server.ts";
import { Cluster } from "../cluster.ts";
import type { Config, KeySource } from "../config.ts";
import { type DemoBackend, startDemoBackends } from "../demo/backends.ts";
import { ConfigError } from "../errors/config-error.ts";
import type { MembershipConfig } from "../membership/config.ts";
import { createSource } from "../membership/index.ts";
import type { AccessRecord, ProxyObserver } from "../proxy/observer.ts";
import { createProxy, type TlsMaterial } from "../proxy/server.ts";
import { movement } from "../ring/diff.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { workerCount } from "../workers/count.ts";
import { checkFiles, summary } from "./check.ts";
import type { Command } from "./command.ts";
import { loadConfig, serveFlags } from "./flags.ts";
import { type AccessLog, createAccessLog, createLogging, type Logging } from "./logging.ts";

/** A running `ringroute serve`: proxy, admin server, cluster and (with no membership) demo backends. */
export interface Serving {
  proxy: AddressInfo;
  admin: AddressInfo;
  cluster: Cluster;
  demo: DemoBackend[];
  /** Applies a new config (SIGHUP): what changed live, and what waits for a restart. */
  reload(next: Config): Promise<Reloaded>;
  /**
   * Graceful shutdown: /readyz turns 503, traffic is served on for
   * `shutdownDelay`, then the proxy stops accepting and requests in flight get
   * `shutdownTimeout` to finish; then everything closes.
   */
  close(): Promise<void>;
}

/** What a reload changed: sections applied live, and fields that need a restart. */
export interface Reloaded {
  applied: string[];
  restart: string[];
}

export interface ServingOptions {
  logger?: Logger;
  /** Sets the log level of every component on reload (the Logging made by `serve`). */
  setLogLevel?: Logging["setLevel"];
  /** Access-log writer for a config's `access` section; default: one JSON line a request on stdout. */
  accessLog?: (access: Config["access"]) => AccessLog | undefined;
  clock?: Clock;
}

/** The PEM files of `tls`, read; a file that cannot be read is a ConfigError naming its field. */
export function readTls(tls: NonNullable<Config["tls"]>): TlsMaterial {
  const read = (path: string, field: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
  };
  return {
    cert: read(tls.cert, "tls.cert"),
    key: read(tls.key, "tls.key"),
    ca: tls.ca === undefined ? undefined : read(tls.ca, "tls.ca"),
  };
}

/** Starts everything a config describes. Throws ConfigError when an address cannot be bound. */
export async function startServing(config: Config, options: ServingOptions = {}): Promise<Serving> {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  const makeAccessLog = options.accessLog ?? ((access) => createAccessLog(access));
  if (workerCount(config.workers) > 1) {
    const { startWorkers } = await import("../workers/primary.ts");
    return startWorkers(config, logger);
  }
  let current = config;
  let demo: DemoBackend[] = [];
  let demoMembership: MembershipConfig | undefined;
  if (config.membership === undefined) {
    demo = await startDemoBackends();
    demoMembership = { static: { members: demo.map(({ name, url }) => ({ name, url })) } };
    logger.info(
      { demo: demo.map(({ name, url }) => ({ name, url })) },
      `no membership configured: started ${demo.length} demo backends`,
    );
  }
  const membershipOf = (c: Config) => c.membership ?? (demoMembership as MembershipConfig);
  const sourceOf = (c: Config) => createSource(membershipOf(c), { logger: logger.child({ component: "membership" }) });
  const cluster = new Cluster({
    source: sourceOf(config),
    ring: config.ring,
    logger: logger.child({ component: "cluster" }),
  });
  logMembership(cluster, logger.child({ component: "ring" }));

  const metrics = new Metrics(cluster, {
    ejected: () => proxy.ejected(),
    memberRetention: config.metrics.memberRetention,
  });
  const reloads = new Counter({
    name: "ringroute_config_reloads_total",
    help: "Config reloads (SIGHUP) by result: applied, or invalid (the running config stays).",
    labelNames: ["result"],
    registers: [metrics.registry],
  });
  reloads.inc({ result: "applied" }, 0);
  reloads.inc({ result: "invalid" }, 0);
  let accessLog = makeAccessLog(config.access);
  const proxyLogger = logger.child({ component: "proxy" });
  const observer = observe(metrics, proxyLogger, (record) => accessLog?.write(record));
  const proxy = createProxy({
    cluster,
    config: { key: config.key, proxy: config.proxy },
    observer,
    logger: proxyLogger,
    clock,
    tls: config.tls === undefined ? undefined : readTls(config.tls),
  });
  const admin = createAdminServer({
    cluster,
    metrics,
    ejected: () => proxy.ejected(),
    readiness: config.readiness,
    logger: logger.child({ component: "admin" }),
    clock,
  });
  const stopDemo = () => Promise.all(demo.map((d) => d.close()));
  // The proxy reports an ejection, not its end: a look each second at who is still skipped logs each return.
  let ejectedBefore = new Set<string>();
  let stopWatching = () => {};
  const watchEjections = () => {
    const now = new Set(proxy.ejected());
    for (const member of ejectedBefore) {
      if (!now.has(member)) proxyLogger.info({ member }, "member back from ejection");
    }
    ejectedBefore = now;
    stopWatching = clock.setTimer(watchEjections, 1000);
  };
  try {
    await cluster.start();
    watchEjections();
    const proxyAddress = await bind("listen", config.listen, (port, host) => proxy.listen(port, host));
    const adminAddress = await bind("admin", config.admin, (port, host) => admin.listen(port, host));
    let closing: Promise<void> | undefined;
    return {
      proxy: proxyAddress,
      admin: adminAddress,
      cluster,
      demo,
      async reload(next) {
        try {
          // Everything is read and checked before anything changes: a bad file leaves the running config whole.
          checkFiles(next);
          const tls = next.tls === undefined ? undefined : readTls(next.tls);
          const changed = (pick: (c: Config) => unknown) =>
            JSON.stringify(pick(current)) !== JSON.stringify(pick(next));
          const restart = (["listen", "admin", "workers", "readiness", "metrics"] as const).filter((field) =>
            changed((c) => c[field]),
          ) as string[];
          if ((current.tls === undefined) !== (next.tls === undefined)) restart.push("tls");
          const applied: string[] = [];
          if (changed((c) => c.log.level)) {
            options.setLogLevel?.(next.log.level);
            applied.push("log.level");
          }
          if (changed((c) => c.log.format)) restart.push("log.format");
          if (changed((c) => [c.key, c.proxy])) {
            proxy.reconfigure(next.proxy, next.key);
            applied.push("key", "proxy");
          }
          if (tls !== undefined && current.tls !== undefined) {
            proxy.reloadTls(tls);
            applied.push("tls");
          }
          if (changed((c) => c.access)) {
            accessLog?.close();
            accessLog = makeAccessLog(next.access);
            applied.push("access");
          }
          if (changed((c) => c.ring)) {
            await cluster.reconfigure({ ring: next.ring });
            applied.push("ring");
          }
          if (changed(membershipOf)) {
            await cluster.reconfigure({ source: sourceOf(next) });
            applied.push("membership");
          }
          if (changed((c) => [c.shutdownTimeout, c.shutdownDelay])) applied.push("shutdown");
          // Fields that need a restart keep their running values until then.
          current = {
            ...next,
            listen: current.listen,
            admin: current.admin,
            workers: current.workers,
            readiness: current.readiness,
            metrics: current.metrics,
            log: { ...next.log, format: current.log.format },
            tls: current.tls === undefined || next.tls === undefined ? current.tls : next.tls,
          };
          reloads.inc({ result: "applied" });
          return { applied, restart };
        } catch (error) {
          reloads.inc({ result: "invalid" });
          throw error;
        }
      },
      close() {
        closing ??= (async () => {
          admin.draining();
          if (current.shutdownDelay > 0) {
            logger.info(
              { shutdownDelay: current.shutdownDelay },
              "draining: /readyz answers 503, serving on so load balancers notice first",
            );
            await new Promise<void>((resolve) => clock.setTimer(resolve, current.shutdownDelay));
          }
          stopWatching();
          logger.info({ shutdownTimeout: current.shutdownTimeout }, "stopped accepting; finishing requests in flight");
          await proxy.close(current.shutdownTimeout);
          await admin.close();
          metrics.close();
          await cluster.stop();
          await stopDemo();
          accessLog?.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    stopWatching();
    await proxy.close(0);
    await admin.close();
    await cluster.stop();
    await stopDemo();
    throw error;
  }
}

/** The metrics as the proxy's observer, plus the access log and a log line a ejection. */
function observe(metrics: Metrics, logger: Logger, access: (record: AccessRecord) => void): ProxyObserver {
  return {
    requestStarted: () => metrics.requestStarted(),
    requestEnded: () => metrics.requestEnded(),
    request: (member, method, status, seconds) => metrics.request(member, method, status, seconds),
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

/** One line a membership change: who joined or left and why, the new checksum, what moved. */
function logMembership(cluster: Cluster, logger: Logger): void {
  cluster.listen({
    memberUp(member) {
      logger.info({ member: member.name, url: member.url }, "member joined the ring");
    },
    memberDown(member) {
      // alive but out: the tag filter or readiness left it out.
      const why = member.state === "alive" ? "filtered out" : member.state;
      logger.info({ member: member.name, why }, `member left the ring (${why})`);
    },
    ring(ring, previous) {
      // A new partition count moves every key; movement() compares equal counts only.
      const moved =
        previous.config.partitions === ring.config.partitions
          ? movement(previous, ring)
          : { primaries: ring.config.partitions, replicaSlots: ring.config.partitions * ring.ownerCount };
      logger.info(
        {
          checksum: ring.checksum,
          previous: previous.checksum,
          members: ring.size,
          partitions: ring.config.partitions,
          moved: moved.primaries,
          movedReplicaSlots: moved.replicaSlots,
        },
        "ring changed",
      );
    },
  });
}

async function bind(
  field: string,
  address: { host: string; port: number },
  listen: (port: number, host: string) => Promise<AddressInfo>,
): Promise<AddressInfo> {
  try {
    return await listen(address.port, address.host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL" || code === "ENOTFOUND") {
      throw new ConfigError(field, `cannot listen on ${address.host}:${address.port} (${code})`);
    }
    throw error;
  }
}

function url(address: AddressInfo, forCurl: boolean, scheme = "http"): string {
  let host = address.address;
  if (forCurl && (host === "0.0.0.0" || host === "::")) host = "127.0.0.1";
  if (host.includes(":")) host = `[${host}]`;
  return `${scheme}://${host}:${address.port}`;
}

/** A curl that shows the routing with the configured key source. */
export function tryHint(proxyUrl: string, from: KeySource): string {
  switch (from.kind) {
    case "path":
      return `try: curl ${proxyUrl}/users/42   (the same path always reaches the same member)`;
    case "header":
      return `try: curl -H '${from.name}: 42' ${proxyUrl}/   (the same ${from.name} header always reaches the same member)`;
    case "query":
      return `try: curl '${proxyUrl}/?${from.name}=42'   (the same ${from.name} parameter always reaches the same member)`;
    case "cookie":
      return `try: curl -b '${from.name}=42' ${proxyUrl}/   (the same ${from.name} cookie always reaches the same member)`;
    case "regex":
      return `try: curl ${proxyUrl}/PATH with PATH matching /${from.pattern}/   (the same first group always reaches the same member)`;
  }
}

/** `ringroute serve`: runs until SIGTERM or SIGINT, then shuts down gracefully and returns (exit 0). */
export const serve: Command = {
  name: "serve",
  synopsis: "ringroute serve [--config FILE] [flags]",
  description: `Runs the routing proxy and its admin server. With no membership configured
it starts three demo backends in-process and routes to them. Logs go to stderr,
the access log to stdout; SIGHUP reloads the config, SIGTERM drains and stops.`,
  flags: serveFlags,
  run: (_line, args) => runServe(args),
};

async function runServe(args: string[]): Promise<void> {
  const config = loadConfig(args);
  checkFiles(config);
  const logging = await createLogging(config.log);
  const { logger } = logging;
  logger.info(`config: ${summary(config)}`);
  const serving = await startServing(config, { logger, setLogLevel: logging.setLevel });
  const scheme = config.tls === undefined ? "http" : "https";
  const proxyUrl = url(serving.proxy, true, scheme);
  const adminUrl = url(serving.admin, true);
  const { checksum } = serving.cluster.ring;
  // These two lines are stable: scripts and tests wait for them to learn the bound addresses.
  logger.info(
    { listen: url(serving.proxy, false, scheme), members: serving.cluster.size, checksum },
    `proxy listening on ${url(serving.proxy, false, scheme)}, ${serving.cluster.size} members, ring ${checksum}`,
  );
  logger.info(
    { admin: adminUrl },
    `admin on ${adminUrl}: ${adminUrl}/metrics ${adminUrl}/ring ${adminUrl}/readyz ${adminUrl}/events`,
  );
  logger.info(tryHint(proxyUrl, config.key.from));

  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      let next: Config;
      try {
        next = loadConfig(args);
        const { applied, restart } = await serving.reload(next);
        logger.info(
          { applied, restart, checksum: serving.cluster.ring.checksum },
          restart.length === 0
            ? "SIGHUP: config reloaded"
            : `SIGHUP: config reloaded; ${restart.join(", ")} take effect at the next restart`,
        );
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        logger.error({ field: error.field, problem: error.problem }, `SIGHUP: config not reloaded: ${error.message}`);
      }
    });
  };

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, `${signal}: shutting down`);
      serving.close().then(() => {
        logger.info("stopped");
        // Everything ringroute opened is closed and the logs are written (synchronously). A
        // handle something else left open must not hold the exit past the shutdown deadline.
        setTimeout(() => process.exit(process.exitCode ?? 0), 250).unref();
        resolve();
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", reload);
  });
}
