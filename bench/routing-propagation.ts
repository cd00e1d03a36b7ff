/**
 * How long a change of what the proxy routes by takes to reach every worker:
 * `serve` with `workers: N` in this process (the primary), and CHANGES
 * routing changes made one after another (a member's URL flips between two
 * addresses under the same name, so each one is a new routing version).
 * For each, the time from the primary publishing the version to the last
 * worker reporting it routes by it (WorkersServing.onPropagated).
 *
 *   npm run bench:propagation -- [--changes 1000] [--workers 2]
 */
import { parseArgs } from "node:util";
import { defaultConfig } from "../src/config.ts";
import { startWorkers } from "../src/serving/workers/primary.ts";
import { markdownTable } from "./stats.ts";

const { values } = parseArgs({
  options: {
    changes: { type: "string", default: "1000" },
    workers: { type: "string", default: "2" },
  },
});
const changes = Number(values.changes);
const workers = Number(values.workers);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function main(): Promise<void> {
  const config = (port: number) => ({
    ...defaultConfig(),
    listen: { host: "127.0.0.1", port: 0 },
    admin: { host: "127.0.0.1", port: 0 },
    workers,
    access: { log: false, sample: 1 },
    log: { level: "warn" as const, format: "json" as const },
    membership: {
      static: {
        members: [
          { name: "a", url: "http://127.0.0.1:9" },
          { name: "b", url: `http://127.0.0.1:${port}` },
        ],
      },
    },
  });
  const serving = await startWorkers(config(10));
  const delays: number[] = [];
  let arrived: (() => void) | undefined;
  serving.onPropagated((_version, ms) => {
    delays.push(ms);
    arrived?.();
  });
  const started = performance.now();
  for (let i = 0; i < changes; i++) {
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    await serving.reload(config(i % 2 === 0 ? 11 : 10));
    await reached;
  }
  const seconds = (performance.now() - started) / 1000;
  await serving.close();
  const sorted = [...delays].sort((a, b) => a - b);
  console.log(
    `${changes} routing changes, ${workers} workers, one after another (${seconds.toFixed(1)} s); ` +
      "delay from the primary publishing a version to the last worker routing by it",
  );
  console.log(
    markdownTable(
      ["changes", "p50 ms", "p90 ms", "p99 ms", "max ms"],
      [
        [
          delays.length,
          percentile(sorted, 50).toFixed(2),
          percentile(sorted, 90).toFixed(2),
          percentile(sorted, 99).toFixed(2),
          (sorted.at(-1) as number).toFixed(2),
        ],
      ],
    ),
  );
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
