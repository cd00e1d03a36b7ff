/**
 * Builds rings on a worker thread. A balanced ring at P = 65536, n = 1000
 * takes seconds of CPU; on the thread that serves traffic that would be a
 * stall, here it is a message. Pass `builder.build` as `ClusterOptions.build`.
 */
import { Worker } from "node:worker_threads";
import { Ring, type RingConfig } from "../ring/ring.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";

export interface BuildRequest {
  id: number;
  members: readonly string[];
  config: RingConfig;
}

export type BuildReply =
  | { id: number; members: readonly string[]; table: Uint32Array; error?: undefined }
  | { id: number; error: string };

interface Waiting {
  config: RingConfig;
  resolve(ring: Ring): void;
  reject(error: Error): void;
}

/** Starts the thread: the compiled .js from dist, or the .ts source through tsx (tests, benchmarks). */
function startThread(nice: number): Worker {
  const options = { workerData: { nice } };
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./ring-thread.js", import.meta.url), options);
  // A worker thread does not inherit the --import=tsx hook, so it registers tsx itself.
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const script = JSON.stringify(new URL("./ring-thread.ts", import.meta.url).href);
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${script}); })`, {
    ...options,
    eval: true,
  });
}

export interface RingBuilderOptions {
  logger?: Logger;
  /**
   * Nice value for the build thread alone (Linux; default 0: the process's
   * priority). 19 makes a build wait for traffic where cores are scarce, but
   * on a saturated machine it can starve the build for minutes.
   */
  nice?: number;
}

/** One long-lived thread, started on the first build and again after it dies. */
export class RingBuilder {
  #thread: Worker | undefined;
  #nextId = 1;
  readonly #waiting = new Map<number, Waiting>();
  readonly #logger: Logger;
  readonly #nice: number;
  #closed = false;

  constructor(options: RingBuilderOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#nice = options.nice ?? 0;
  }

  /** The ring `Ring.build(members, config)` would give, built on the thread. */
  build = (members: readonly string[], config: RingConfig): Promise<Ring> => {
    if (this.#closed) return Promise.reject(new Error("ring builder closed"));
    const id = this.#nextId++;
    const thread = this.#start();
    return new Promise<Ring>((resolve, reject) => {
      const request: BuildRequest = { id, members: [...members], config: { ...config } };
      this.#waiting.set(id, { config: request.config, resolve, reject });
      thread.postMessage(request);
      thread.ref();
    });
  };

  /** Stops the thread; builds still waiting are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const thread = this.#thread;
    this.#thread = undefined;
    this.#failAll(new Error("ring builder closed"));
    await thread?.terminate();
  }

  #start(): Worker {
    if (this.#thread !== undefined) return this.#thread;
    const thread = startThread(this.#nice);
    thread.on("message", (reply: BuildReply) => this.#reply(reply));
    thread.on("error", (error) => {
      this.#logger.error({ err: error }, "ring build thread failed");
      this.#failAll(error);
    });
    thread.on("exit", (code) => {
      if (this.#thread === thread) this.#thread = undefined;
      this.#failAll(new Error(`ring build thread exited with code ${code}`));
    });
    this.#thread = thread;
    return thread;
  }

  #reply(reply: BuildReply): void {
    const waiting = this.#waiting.get(reply.id);
    if (waiting === undefined) return;
    this.#waiting.delete(reply.id);
    // Idle, the thread must not keep the process alive.
    if (this.#waiting.size === 0) this.#thread?.unref();
    if (reply.error !== undefined) {
      waiting.reject(new Error(reply.error));
      return;
    }
    try {
      waiting.resolve(Ring.fromTable(reply.members, waiting.config, reply.table));
    } catch (error) {
      waiting.reject(error as Error);
    }
  }

  #failAll(error: Error): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) w.reject(error);
  }
}
