// The script node:cluster forks for each worker process.
import { runWorker } from "./worker.ts";

runWorker();
