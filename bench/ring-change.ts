/**
 * The longest event-loop block of the serving process during a ring change:
 * a member joins P = 65,536 partitions over n = 1,000 members (the default
 * placement, balanced), with the admin server up and the ring page's event
 * stream (with its moved cells) connected. The goal is at most 50 ms on a
 * quiet machine, so a proxy keeps answering while its ring changes.
 *
 * Two set-ups, alternating rounds:
 * - serve: single-process `serve` (startServing) on a members file, as it runs;
 * - builder: the same Cluster, metrics and admin server with the ring built on
 *   the worker thread (RingBuilder), so only what follows the build (the ring
 *   from its table, the diff, the listeners) runs on the loop.
 * Also times those on-loop steps one by one.
 *
 *   npm run bench:ring-change -- --partitions 65536 --members 1000 --rounds 3
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ringSummary } from "../src/admin/events.ts";
import { Metrics } from "../src/admin/metrics.ts";
import { movedCells } from "../src/admin/ring-view.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { startServing } from "../src/commands/serve.ts";
import { defaultConfig } from "../src/config.ts";
import type { Member, SnapshotSink } from "../src/membership/source.ts";
import { diff } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { RingBuilder } from "../src/serving/ring-builder.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({
  options: {
    partitions: { type: "string", default: "65536" },
    members: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
  },
});
const partitions = Number(values.partitions);
const n = Number(values.members);
const rounds = Number(values.rounds);
const names = Array.from({ length: n }, (_, i) => `member-${String(i).padStart(4, "0")}`);
const member = (name: string): Member => ({ name, url: `http://127.0.0.1:9/${name}`, tags: {}, state: "alive" });

/** Follows /events as the ring page does, reading every byte. */
function follow(port: number): () => void {
  const req = request({ host: "127.0.0.1", port, path: "/events?types=memberUp,memberDown,ring,source,cells" });
  req.on("response", (res) => res.resume());
  req.on("error", () => {});
  req.end();
  return () => req.destroy();
}

/** The longest block while `change` runs and until `done` resolves, then 200 ms more. */
async function longestBlock(change: () => Promise<void>, done: Promise<unknown>): Promise<number> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  histogram.enable();
  await change();
  await done;
  await new Promise((resolve) => setTimeout(resolve, 200));
  histogram.disable();
  return histogram.max / 1e6;
}

const ringChanged = (cluster: Cluster) =>
  new Promise<void>((resolve) => {
    const stop = cluster.listen({
      ring: () => {
        stop();
        resolve();
      },
    });
  });

async function serveRound(round: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-change-"));
  const path = join(dir, "members.txt");
  const write = async (list: string[]) => {
    await writeFile(`${path}.tmp`, list.map((m) => `${m} http://127.0.0.1:9/${m}\n`).join(""));
    await rename(`${path}.tmp`, path);
  };
  await write(names);
  const config = defaultConfig();
  config.listen = { host: "127.0.0.1", port: 0 };
  config.admin = { host: "127.0.0.1", port: 0 };
  config.ring.partitions = partitions;
  config.membership = { file: { path, pollInterval: 100, settle: 50 } };
  const serving = await startServing(config);
  const stop = follow(serving.admin.port);
  try {
    const changed = ringChanged(serving.cluster);
    return await longestBlock(() => write([...names, `joiner-${round}`]), changed);
  } finally {
    stop();
    await serving.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function builderRound(round: number): Promise<number> {
  let sink: SnapshotSink | undefined;
  const source = {
    kind: "bench",
    start: async (s: SnapshotSink) => {
      sink = s;
      s.snapshot(names.map(member));
    },
    stop: async () => {},
  };
  const builder = new RingBuilder();
  const cluster = new Cluster({ source, ring: { partitions }, build: builder.build });
  const metrics = new Metrics(cluster);
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  await cluster.start();
  await cluster.idle();
  const stop = follow(port);
  try {
    const changed = ringChanged(cluster);
    return await longestBlock(async () => sink?.snapshot([...names, `joiner-${round}`].map(member)), changed);
  } finally {
    stop();
    await admin.close();
    metrics.close();
    await cluster.stop();
    await builder.close();
  }
}

/** The steps that follow an off-loop build, each timed alone (ms). */
function steps(): Record<string, number> {
  const before = Ring.build(names, { partitions });
  const after = Ring.build([...names, "joiner"], { partitions });
  const table = after.table.slice();
  const time = (run: () => unknown) => {
    const started = performance.now();
    run();
    return performance.now() - started;
  };
  return {
    "Ring.fromTable (table, loads, checksum)": time(() => Ring.fromTable(after.members, after.config, table)),
    "diff (acquire/release events)": time(() => diff(before, after)),
    "ring event summary (plan, from/to)": time(() => ringSummary(after, before)),
    "page's moved cells": time(() => movedCells(after, before)),
  };
}

const samples = { serve: [] as number[], builder: [] as number[] };
for (let round = 0; round < rounds; round++) {
  samples.serve.push(await serveRound(round));
  samples.builder.push(await builderRound(round));
  process.stderr.write(
    `round ${round}: serve ${samples.serve.at(-1)?.toFixed(0)} ms, builder ${samples.builder.at(-1)?.toFixed(0)} ms\n`,
  );
}
const stepTimes: Record<string, number[]> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, ms] of Object.entries(steps())) stepTimes[name] = [...(stepTimes[name] ?? []), ms];
}
const show = (xs: number[]) =>
  `${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
process.stdout.write(
  `longest event-loop block during a join, P = ${partitions}, n = ${n}, median of ${rounds} rounds\n`,
);
process.stdout.write(`  serve, ring built on the loop       ${show(samples.serve)}\n`);
process.stdout.write(`  ring built on the builder thread    ${show(samples.builder)}\n`);
process.stdout.write("on-loop steps after an off-loop build, alone:\n");
for (const [name, xs] of Object.entries(stepTimes)) process.stdout.write(`  ${name.padEnd(40)} ${show(xs)}\n`);
