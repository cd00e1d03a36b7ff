import { availableParallelism } from "node:os";
import type { Config } from "../../config.ts";

/** The number of proxy processes `workers: N | auto` asks for. */
export function workerCount(workers: Config["workers"]): number {
  return workers === "auto" ? availableParallelism() : workers;
}
