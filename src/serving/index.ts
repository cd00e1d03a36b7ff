/**
 * A running proxy from a validated config: in this process, or with
 * `workers: N` in N worker processes under a primary. Both hosts compose the
 * same parts (source.ts, listener.ts, reload.ts); neither knows the other.
 */
import type { Config } from "../config.ts";
import { startInProcess } from "./in-process.ts";
import type { Serving, ServingOptions } from "./serving.ts";
import { workerCount } from "./workers/count.ts";

export { readTls } from "./reload.ts";
export type { Reloaded, Serving, ServingOptions, WorkerStatus } from "./serving.ts";

/** Starts everything a config describes. Throws ConfigError when an address cannot be bound. */
export async function startServing(config: Config, options: ServingOptions = {}): Promise<Serving> {
  if (workerCount(config.workers) > 1) {
    const { startWorkers } = await import("./workers/primary.ts");
    return startWorkers(config, options);
  }
  return startInProcess(config, options);
}
