import type { AddressInfo } from "node:net";
import { Metrics } from "../admin/metrics.ts";
import { createAdminServer } from "../admin/server.ts";
import { Cluster } from "../cluster.ts";
import { type Config, loadConfig, serveUsage } from "../config.ts";
import { type DemoBackend, startDemoBackends } from "../demo/backends.ts";
import { ConfigError } from "../errors/config-error.ts";
import { createSource } from "../membership/index.ts";
import { createProxy } from "../proxy/server.ts";
import { workerCount } from "../workers/count.ts";

export { serveUsage };

/** A running `ringroute serve`: proxy, admin server, cluster and (with no membership) demo backends. */
export interface Serving {
  proxy: AddressInfo;
  admin: AddressInfo;
  cluster: Cluster;
  demo: DemoBackend[];
  /** Graceful shutdown: stop accepting, finish in-flight requests within config.shutdownTimeout, close everything. */
  close(): Promise<void>;
}

/** Starts everything a config describes. Throws ConfigError when an address cannot be bound. */
export async function startServing(config: Config, log: (line: string) => void = () => {}): Promise<Serving> {
  if (workerCount(config.workers) > 1) return (await import("../workers/primary.ts")).startWorkers(config, log);
  let demo: DemoBackend[] = [];
  let membership = config.membership;
  if (membership === undefined) {
    demo = await startDemoBackends();
    membership = { static: { members: demo.map(({ name, url }) => ({ name, url })) } };
    log(
      `no membership configured: started ${demo.length} demo backends (${demo.map((d) => `${d.name} ${d.url}`).join(", ")})`,
    );
  }
  const cluster = new Cluster({ source: createSource(membership, { log }), ring: config.ring });
  const metrics = new Metrics(cluster);
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy }, observer: metrics });
  metrics.ejected = proxy.ejected;
  const admin = createAdminServer({ cluster, metrics, ejected: proxy.ejected });
  const stopDemo = () => Promise.all(demo.map((d) => d.close()));
  try {
    await cluster.start();
    const proxyAddress = await bind("listen", config.listen, (port, host) => proxy.listen(port, host));
    const adminAddress = await bind("admin", config.admin, (port, host) => admin.listen(port, host));
    let closing: Promise<void> | undefined;
    return {
      proxy: proxyAddress,
      admin: adminAddress,
      cluster,
      demo,
      close() {
        closing ??= (async () => {
          await proxy.close(config.shutdownTimeout);
          await admin.close();
          metrics.close();
          await cluster.stop();
          await stopDemo();
        })();
        return closing;
      },
    };
  } catch (error) {
    await proxy.close(0);
    await admin.close();
    await cluster.stop();
    await stopDemo();
    throw error;
  }
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

function url(address: AddressInfo, forCurl: boolean): string {
  let host = address.address;
  if (forCurl && (host === "0.0.0.0" || host === "::")) host = "127.0.0.1";
  if (host.includes(":")) host = `[${host}]`;
  return `http://${host}:${address.port}`;
}

/** `ringroute serve`: runs until SIGTERM or SIGINT, then shuts down gracefully and returns (exit 0). */
export async function serve(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${serveUsage}\n`);
    return;
  }
  const config = loadConfig(args);
  const log = (line: string) => process.stdout.write(`ringroute: ${line}\n`);
  const serving = await startServing(config, log);
  const proxyUrl = url(serving.proxy, true);
  const adminUrl = url(serving.admin, true);
  log(
    `proxy listening on ${url(serving.proxy, false)}, ${serving.cluster.size} members, ring ${serving.cluster.ring.checksum}`,
  );
  log(`try: curl ${proxyUrl}/users/42   (the same path always reaches the same member)`);
  log(`admin on ${adminUrl}: ${adminUrl}/metrics ${adminUrl}/ring ${adminUrl}/readyz ${adminUrl}/events`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      log(`${signal}: finishing requests in flight (up to ${config.shutdownTimeout} ms)`);
      serving.close().then(() => {
        log("stopped");
        resolve();
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
