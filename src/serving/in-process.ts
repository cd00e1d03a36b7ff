/**
 * The in-process host: the routing source, the listener and the admin
 * server in this one process.
 */
import { Metrics } from "../admin/metrics.ts";
import { createAdminServer } from "../admin/server.ts";
import { createAccessLog } from "../commands/logging.ts";
import type { Config } from "../config.ts";
import { systemClock } from "../utils/clock.ts";
import { silentLogger } from "../utils/logger.ts";
import { createListener } from "./listener.ts";
import { planReload, readTls, validateReload } from "./reload.ts";
import { announceShutdown, countedReloads, listenAdmin, type Serving, type ServingOptions } from "./serving.ts";
import { createRoutingSource } from "./source.ts";

export async function startInProcess(config: Config, options: ServingOptions = {}): Promise<Serving> {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  const source = await createRoutingSource(config, logger, options.clock);
  const { cluster } = source;
  let current = config;
  const metrics = new Metrics(cluster, {
    ejected: () => listener.proxy.ejected(),
    memberRetention: config.metrics.memberRetention,
  });
  const listener = createListener(config, {
    cluster,
    metrics,
    accessLog: options.accessLog ?? ((access) => createAccessLog(access)),
    tls: config.tls === undefined ? undefined : readTls(config.tls),
    logger,
    clock,
  });
  const admin = createAdminServer({
    cluster,
    metrics,
    ejected: () => listener.proxy.ejected(),
    readiness: config.readiness,
    logger: logger.child({ component: "admin" }),
    clock,
  });
  try {
    await cluster.start();
    // The first ring is built on the thread: listen once it is in place.
    await cluster.idle();
    const proxyAddress = await listener.listen();
    const adminAddress = await listenAdmin(admin, config);
    let closing: Promise<void> | undefined;
    return {
      proxy: proxyAddress,
      admin: adminAddress,
      cluster,
      demo: source.demo,
      workers: () => [],
      reload: countedReloads(metrics.registry, async (next) => {
        // Everything is read and checked before anything changes: a bad file leaves the running config whole.
        const { config: valid, tls } = validateReload(next);
        const plan = planReload(current, valid, source.membershipOf);
        if (plan.logLevel) options.setLogLevel?.(plan.running.log.level);
        listener.reload(plan, tls);
        await source.reload(plan);
        current = plan.running;
        return { applied: plan.applied, restart: plan.restart };
      }),
      close() {
        closing ??= (async () => {
          await announceShutdown(current, admin, logger, clock);
          await listener.close(current.shutdownTimeout);
          await admin.close();
          metrics.close();
          await source.stop();
        })();
        return closing;
      },
    };
  } catch (error) {
    await listener.close(0);
    await admin.close();
    await source.stop();
    throw error;
  }
}
