/**
 * `serve` with workers > 1: the primary process runs the membership source,
 * the Cluster (building rings on a thread), the admin server and /events;
 * node:cluster workers run the proxy. Node 20 has no `reusePort`, so the
 * workers share one listening socket through node:cluster's handle (the
 * primary accepts and hands connections round-robin); each ring is built
 * once, here, and its table sent to every worker.
 */
import cluster, { type Worker } from "node:cluster";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createAdminServer } from "../admin/server.ts";
import { Cluster } from "../cluster.ts";
import type { Serving } from "../commands/serve.ts";
import type { Config } from "../config.ts";
import { type DemoBackend, startDemoBackends } from "../demo/backends.ts";
import { ConfigError } from "../errors/config-error.ts";
import { createSource } from "../membership/index.ts";
import { workerCount } from "./count.ts";
import { type FromWorker, isMessage, type ToWorker } from "./messages.ts";
import { WorkerMetrics, type WorkerScrape } from "./metrics.ts";
import { RingBuilder } from "./ring-builder.ts";
import { ringMessage } from "./view.ts";

/** One worker process as the primary sees it. */
interface WorkerState {
  worker: Worker;
  /** The checksum of the ring the worker last reported routing by. */
  checksum: string | undefined;
  /** Checksums of the rings sent to it and not yet confirmed, oldest first; undefined before its start message. */
  sent: string[] | undefined;
  error: string | undefined;
}

export interface WorkersServing extends Serving {
  /** Worker processes now running, with the checksum of the ring each routes by. */
  workers(): { pid: number; checksum: string | null; inSync: boolean }[];
}

const workerScript = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "./worker-main.ts" : "./worker-main.js", import.meta.url),
);

/** Waits this long for a worker's metrics before scraping without them. */
const scrapeTimeout = 5_000;

export async function startWorkers(config: Config, log: (line: string) => void = () => {}): Promise<WorkersServing> {
  const count = workerCount(config.workers);
  let demo: DemoBackend[] = [];
  let membership = config.membership;
  if (membership === undefined) {
    demo = await startDemoBackends();
    membership = { static: { members: demo.map(({ name, url }) => ({ name, url })) } };
    log(
      `no membership configured: started ${demo.length} demo backends (${demo.map((d) => `${d.name} ${d.url}`).join(", ")})`,
    );
  }
  const builder = new RingBuilder();
  const ringCluster = new Cluster({
    source: createSource(membership, { log }),
    ring: config.ring,
    build: builder.build,
  });
  const states = new Map<number, WorkerState>();
  let stopping = false;
  let lastRestart = 0;

  // Scrapes: each worker answers with its registry as JSON.
  let nextScrape = 1;
  const scrapes = new Map<number, { answers: WorkerScrape[]; pending: Set<number>; done: () => void }>();
  const scrapeWorkers = (): Promise<WorkerScrape[]> =>
    new Promise((resolve) => {
      const id = nextScrape++;
      const targets = [...states.values()].filter((s) => s.worker.isConnected());
      const scrape = {
        answers: [] as WorkerScrape[],
        pending: new Set(targets.map((s) => s.worker.id)),
        done: () => {},
      };
      const timer = setTimeout(() => scrape.done(), scrapeTimeout);
      scrape.done = () => {
        clearTimeout(timer);
        scrapes.delete(id);
        resolve(scrape.answers);
      };
      scrapes.set(id, scrape);
      if (targets.length === 0) scrape.done();
      for (const s of targets) send(s.worker, { type: "ringroute:scrape", id });
    });
  const metrics = new WorkerMetrics(ringCluster, scrapeWorkers);

  const workers = () =>
    [...states.values()].map((s) => ({
      pid: s.worker.process.pid as number,
      checksum: s.checksum ?? null,
      inSync: s.checksum === ringCluster.ring.checksum,
      ...(s.error === undefined ? {} : { error: s.error }),
    }));
  const admin = createAdminServer({
    cluster: ringCluster,
    metrics,
    ejected: () => metrics.ejected(),
    ring: () => ({ workers: workers() }),
  });

  const send = (worker: Worker, message: ToWorker) => {
    if (worker.isConnected()) worker.send(message);
  };
  const current = () => ringMessage(ringCluster.ring, ringCluster.knownMembers());
  const stopFollowing = ringCluster.listen({
    ring: () => {
      const message = current();
      for (const s of states.values()) {
        // A worker not yet started gets the current ring with its start message.
        if (s.sent === undefined) continue;
        s.sent.push(message.checksum);
        send(s.worker, { type: "ringroute:ring", ring: message });
      }
    },
  });

  // The first listening address (all workers share it), or why listening failed.
  let listening: (result: { address: AddressInfo } | { error: Error }) => void = () => {};
  const firstListen = new Promise<{ address: AddressInfo } | { error: Error }>((resolve) => (listening = resolve));

  cluster.setupPrimary({ exec: workerScript, execArgv: process.execArgv, serialization: "advanced", silent: false });
  const fork = () => {
    const worker = cluster.fork();
    const state: WorkerState = { worker, checksum: undefined, sent: undefined, error: undefined };
    states.set(worker.id, state);
    worker.on("message", (message: unknown) => {
      if (!isMessage<FromWorker>(message)) return;
      switch (message.type) {
        case "ringroute:hello": {
          const ring = current();
          state.sent = [ring.checksum];
          send(worker, { type: "ringroute:start", config, ring });
          return;
        }
        case "ringroute:listening":
          listening({ address: message.address as AddressInfo });
          return;
        case "ringroute:listen-failed":
          listening({
            error: new ConfigError(
              "listen",
              `cannot listen on ${config.listen.host}:${config.listen.port} (${message.code})`,
            ),
          });
          return;
        case "ringroute:ring-applied": {
          // Rings are applied in the order sent: this answer is to the oldest unconfirmed one.
          const expected = state.sent?.shift();
          state.checksum = message.checksum;
          state.error = message.error;
          if (message.error !== undefined || message.checksum !== expected) {
            state.error ??= `routes by ring ${message.checksum}, was sent ${expected}`;
            log(`worker ${worker.process.pid}: ${state.error}`);
          }
          return;
        }
        case "ringroute:scrape": {
          const scrape = scrapes.get(message.id);
          if (scrape === undefined) return;
          scrape.answers.push({ metrics: message.metrics, ejected: message.ejected });
          scrape.pending.delete(worker.id);
          if (scrape.pending.size === 0) scrape.done();
          return;
        }
      }
    });
    worker.on("exit", (code, signal) => {
      states.delete(worker.id);
      // A worker that died will not answer; its requests are gone with it.
      for (const scrape of scrapes.values()) {
        if (scrape.pending.delete(worker.id) && scrape.pending.size === 0) scrape.done();
      }
      if (stopping) return;
      listening({ error: new Error(`worker ${worker.process.pid} exited (${signal ?? code}) before listening`) });
      metrics.restarts.inc();
      log(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
      // A worker that keeps dying at once is restarted at most once a second.
      const wait = Math.max(0, lastRestart + 1_000 - Date.now());
      lastRestart = Date.now() + wait;
      setTimeout(() => {
        if (!stopping) fork();
      }, wait);
    });
  };

  const stopAll = async (timeout: number) => {
    stopping = true;
    const exits = [...states.values()].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.worker.isDead()) resolve();
          else s.worker.once("exit", () => resolve());
        }),
    );
    for (const s of states.values()) send(s.worker, { type: "ringroute:drain", timeout });
    // Each worker cuts what is left at `timeout`; one that still has not exited a second later is killed.
    const kill = setTimeout(() => {
      for (const s of states.values()) s.worker.process.kill("SIGKILL");
    }, timeout + 1_000);
    await Promise.all(exits);
    clearTimeout(kill);
  };
  const stopRest = async () => {
    stopFollowing();
    await admin.close();
    metrics.close();
    await ringCluster.stop();
    await builder.close();
    await Promise.all(demo.map((d) => d.close()));
  };

  try {
    await ringCluster.start();
    await ringCluster.idle();
    for (let i = 0; i < count; i++) fork();
    const first = await firstListen;
    if ("error" in first) throw first.error;
    const adminAddress = await bindAdmin(config, (port, host) => admin.listen(port, host));
    let closing: Promise<void> | undefined;
    return {
      proxy: first.address,
      admin: adminAddress,
      cluster: ringCluster,
      demo,
      workers,
      close() {
        closing ??= (async () => {
          await stopAll(config.shutdownTimeout);
          await stopRest();
        })();
        return closing;
      },
    };
  } catch (error) {
    await stopAll(0);
    await stopRest();
    throw error;
  }
}

async function bindAdmin(
  config: Config,
  listen: (port: number, host: string) => Promise<AddressInfo>,
): Promise<AddressInfo> {
  try {
    return await listen(config.admin.port, config.admin.host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError("admin", `cannot listen on ${config.admin.host}:${config.admin.port} (${code})`);
  }
}
