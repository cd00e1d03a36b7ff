/**
 * The workers host (`workers: N`): the primary process runs the routing
 * source, the admin server and /events; node:cluster workers run the
 * listener, each composed as in one process (listener.ts). Node 20 has no
 * `reusePort`: the primary listens, accepts, and hands each connection to
 * the next worker in turn (as node:cluster's round-robin does). Holding the
 * socket itself lets the primary stop accepting first at shutdown, so a new
 * connection is refused or served, never handed to a worker that is gone.
 * The primary sends every worker the routing snapshot on every change of
 * it; each worker reports the version it routes by.
 */
import cluster, { type Worker } from "node:cluster";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createAdminServer } from "../../admin/server.ts";
import type { Config } from "../../config.ts";
import { systemClock } from "../../utils/clock.ts";
import { silentLogger } from "../../utils/logger.ts";
import { bindError } from "../listener.ts";
import { planReload, readTls, validateReload } from "../reload.ts";
import { RoutingFeed, type RoutingSnapshot } from "../routing-snapshot.ts";
import {
  announceShutdown,
  countedReloads,
  listenAdmin,
  type Serving,
  type ServingOptions,
  type WorkerStatus,
} from "../serving.ts";
import { createRoutingSource } from "../source.ts";
import { workerCount } from "./count.ts";
import { type FromWorker, isMessage, type ToWorker } from "./messages.ts";
import { WorkerMetrics, type WorkerScrape } from "./metrics.ts";

/** One worker process as the primary sees it. */
interface WorkerState {
  worker: Worker;
  /** The routing version the worker last reported routing by. */
  version: number | undefined;
  /** Whether it was sent its start message (routing snapshots go to started workers only). */
  started: boolean;
  /** Whether its listener is in place: connections go to ready workers only. */
  ready: boolean;
  error: string | undefined;
}

export interface WorkersServing extends Serving {
  /**
   * Calls `listener` each time every worker routes by a new routing version,
   * with the milliseconds from its publication in the primary to the last
   * worker's report (bench/routing-propagation.ts).
   */
  onPropagated(listener: (version: number, ms: number) => void): () => void;
}

const workerScript = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "./worker-main.ts" : "./worker-main.js", import.meta.url),
);

/** Connections held while no worker is ready (all of them restarting). */
const maxWaiting = 1024;

/** Waits this long for a worker's metrics (or its reload) before going on without it. */
const answerTimeout = 5_000;

export async function startWorkers(config: Config, options: ServingOptions = {}): Promise<WorkersServing> {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  const count = workerCount(config.workers);
  const source = await createRoutingSource(config, logger, options.clock);
  const ringCluster = source.cluster;
  let current = config;
  let tls = config.tls === undefined ? undefined : readTls(config.tls);
  const states = new Map<number, WorkerState>();
  let stopping = false;
  let lastRestart = 0;

  // The access log: workers send whole lines in batches; only this process writes stdout.
  const stdout = pino.destination({ fd: 1, sync: false, minLength: 4096 });
  const flushStdout = setInterval(() => stdout.flush(), 1000).unref();

  // Questions to workers (scrapes, reloads), each answered once by every worker or given up on.
  let nextAsk = 1;
  const asks = new Map<number, { pending: Set<number>; answer: (worker: number, value: unknown) => void }>();
  const ask = <T>(make: (id: number) => ToWorker): Promise<T[]> =>
    new Promise((resolve) => {
      const id = nextAsk++;
      const targets = [...states.values()].filter((s) => s.started && s.worker.isConnected());
      const answers: T[] = [];
      const pending = new Set(targets.map((s) => s.worker.id));
      const done = () => {
        clearTimeout(timer);
        asks.delete(id);
        resolve(answers);
      };
      const timer = setTimeout(done, answerTimeout);
      asks.set(id, {
        pending,
        answer: (worker, value) => {
          if (!pending.delete(worker)) return;
          if (value !== undefined) answers.push(value as T);
          if (pending.size === 0) done();
        },
      });
      if (targets.length === 0) done();
      for (const s of targets) send(s.worker, make(id));
    });
  const metrics = new WorkerMetrics(ringCluster, () => ask<WorkerScrape>((id) => ({ type: "ringroute:scrape", id })));

  const feed = new RoutingFeed(ringCluster);
  const published = new Map<number, number>();
  const propagated = new Set<(version: number, ms: number) => void>();
  const workers = (): WorkerStatus[] =>
    [...states.values()].map((s) => ({
      pid: s.worker.process.pid as number,
      version: s.version ?? null,
      inSync: s.version === feed.current.version,
      ...(s.error === undefined ? {} : { error: s.error }),
    }));
  const admin = createAdminServer({
    cluster: ringCluster,
    metrics,
    ejected: () => metrics.ejected(),
    readiness: config.readiness,
    logger: logger.child({ component: "admin" }),
    clock,
    ring: () => ({ routingVersion: feed.current.version, workers: workers() }),
  });

  const send = (worker: Worker, message: ToWorker) => {
    if (worker.isConnected()) worker.send(message);
  };
  const stopFeed = feed.listen((routing: RoutingSnapshot) => {
    published.set(routing.version, performance.now());
    for (const s of states.values()) if (s.started) send(s.worker, { type: "ringroute:routing", routing });
  });
  /** A version every started worker routes by (or a later one) has reached them all. */
  const checkPropagated = (version: number) => {
    const at = published.get(version);
    if (at === undefined) return;
    for (const s of states.values()) if (s.started && (s.version ?? -1) < version) return;
    published.delete(version);
    for (const old of published.keys()) if (old < version) published.delete(old);
    for (const listener of propagated) listener(version, performance.now() - at);
  };

  // Connections, each to the next ready worker; held back while none is ready (all restarting).
  let turn = 0;
  const waiting: Socket[] = [];
  const handOff = (socket: Socket) => {
    const ready = [...states.values()].filter((s) => s.ready && s.worker.isConnected());
    if (ready.length === 0) {
      // Held for the next worker to come up; beyond a bound, refused rather than piled up.
      if (waiting.length < maxWaiting) waiting.push(socket);
      else socket.destroy();
      return;
    }
    const target = ready[turn++ % ready.length] as WorkerState;
    target.worker.send({ type: "ringroute:connection" } satisfies ToWorker, socket, (error) => {
      // The worker went away before taking it: another one serves it (or it waits for one).
      if (error && !socket.destroyed) handOff(socket);
    });
  };
  const server = createServer({ pauseOnConnect: true }, handOff);
  // Until every worker is ready: one that fails to start ends the start-up.
  let ready: (error?: Error) => void = () => {};
  const allReady = new Promise<Error | undefined>((resolve) => (ready = resolve));

  cluster.setupPrimary({ exec: workerScript, execArgv: process.execArgv, serialization: "advanced", silent: false });
  const fork = () => {
    const worker = cluster.fork();
    const state: WorkerState = { worker, version: undefined, started: false, ready: false, error: undefined };
    states.set(worker.id, state);
    worker.on("message", (message: unknown) => {
      if (!isMessage<FromWorker>(message)) return;
      switch (message.type) {
        case "ringroute:hello":
          state.started = true;
          send(worker, {
            type: "ringroute:start",
            config: current,
            tls,
            routing: feed.current,
            silent: options.logger === undefined,
          });
          return;
        case "ringroute:ready":
          state.ready = true;
          if ([...states.values()].every((s) => s.ready)) ready();
          for (const socket of waiting.splice(0)) handOff(socket);
          return;
        case "ringroute:routing-applied":
          state.version = message.version ?? undefined;
          state.error = message.error;
          if (message.error !== undefined) {
            logger.error(
              { worker: worker.process.pid, error: message.error },
              "worker kept its routing: the snapshot did not apply",
            );
          }
          if (message.version !== null) checkPropagated(message.version);
          return;
        case "ringroute:access":
          stdout.write(message.lines);
          return;
        case "ringroute:scrape":
          asks.get(message.id)?.answer(worker.id, { metrics: message.metrics, ejected: message.ejected });
          return;
        case "ringroute:reloaded":
          asks.get(message.id)?.answer(worker.id, message.error);
          return;
      }
    });
    worker.on("exit", (code, signal) => {
      states.delete(worker.id);
      // A worker that died will not answer.
      for (const pending of asks.values()) pending.answer(worker.id, undefined);
      if (stopping) return;
      if (!state.ready) ready(new Error(`worker ${worker.process.pid} exited (${signal ?? code}) before it was ready`));
      metrics.restarts.inc();
      logger.warn({ worker: worker.process.pid, exit: signal ?? code }, "worker exited; starting another");
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
    for (const socket of waiting.splice(0)) socket.destroy();
    stopFeed();
    feed.stop();
    await admin.close();
    metrics.close();
    await source.stop();
    clearInterval(flushStdout);
    try {
      stdout.flushSync();
    } catch {
      // stdout gone (a closed pipe): nothing left to save.
    }
  };

  try {
    await ringCluster.start();
    await ringCluster.idle();
    // Bound before any worker starts: a busy address fails at once. Connections that arrive
    // before the workers are ready wait for them.
    const proxyAddress = await new Promise<AddressInfo>((resolve, reject) => {
      server.once("error", (error) => reject(bindError("listen", config.listen, error)));
      server.listen(config.listen.port, config.listen.host, () => resolve(server.address() as AddressInfo));
    });
    for (let i = 0; i < count; i++) fork();
    const failed = await allReady;
    if (failed !== undefined) throw failed;
    const adminAddress = await listenAdmin(admin, config);
    let closing: Promise<void> | undefined;
    return {
      proxy: proxyAddress,
      admin: adminAddress,
      cluster: ringCluster,
      demo: source.demo,
      workers,
      onPropagated(listener) {
        propagated.add(listener);
        return () => propagated.delete(listener);
      },
      // The primary validates (loads, reads every file) before anything changes; then every worker applies.
      reload: countedReloads(metrics.registry, async (next) => {
        const valid = validateReload(next);
        const plan = planReload(current, valid.config, source.membershipOf);
        if (plan.logLevel) options.setLogLevel?.(plan.running.log.level);
        current = plan.running;
        tls = plan.tls ? valid.tls : tls;
        const errors = await ask<string>((id) => ({ type: "ringroute:reload", id, config: current, tls }));
        for (const error of errors) logger.error({ error }, "a worker could not apply the reload");
        await source.reload(plan);
        return { applied: plan.applied, restart: plan.restart };
      }),
      close() {
        closing ??= (async () => {
          await announceShutdown(current, admin, logger, clock);
          // Stop accepting first: a new connection is refused from here on, never lost in a hand-off.
          // (Not awaited: close's callback waits for the connections the workers hold.)
          server.close();
          await stopAll(current.shutdownTimeout);
          await stopRest();
        })();
        return closing;
      },
    };
  } catch (error) {
    if (server.listening) server.close();
    await stopAll(0);
    await stopRest();
    throw error;
  }
}
