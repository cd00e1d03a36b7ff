/**
 * Latency while the ring is rebuilt: a balanced ring at P = 65536 over
 * n = 1000 members takes seconds of CPU to build. The proxy (one process,
 * 1000 members spread over three nginx backends) serves a fixed request rate
 * while the membership changes every few seconds, with the ring built in
 * place (the Cluster's default) or on a thread (`ClusterOptions.build` with
 * a RingBuilder). Latency is counted from when each request was due, not
 * when it was sent, so a stalled event loop shows in full (no coordinated
 * omission, unlike wrk's closed loop). Rounds alternate the modes. The
 * `workers` mode runs `ringroute serve --workers 2` over a members file
 * instead: the primary builds on a thread and hands the table to both workers.
 *
 *   npm run bench:rebuild -- [--partitions 65536] [--members 1000] [--rate 100]
 *                            [--seconds 12] [--every 3] [--rounds 3]
 *                            [--modes "no change,inline,thread,workers"]
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { markdownTable, median } from "./stats.ts";
import { freePort, percentile, startBackends, waitForHttp } from "./workers/common.ts";

const { values } = parseArgs({
  options: {
    partitions: { type: "string", default: "65536" },
    members: { type: "string", default: "1000" },
    rate: { type: "string", default: "100" },
    seconds: { type: "string", default: "12" },
    every: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    modes: { type: "string", default: "no change,inline,thread,workers" },
  },
});
const partitions = Number(values.partitions);
const memberCount = Number(values.members);
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const every = Number(values.every);
const rounds = Number(values.rounds);

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const proxyScript = fileURLToPath(new URL("./workers/rebuild-proxy.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ringroute-rebuild-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

const allModes = ["no change", "inline", "thread", "workers"] as const;
type Mode = (typeof allModes)[number];
const modes = (values.modes as string).split(",").map((m) => {
  if (!(allModes as readonly string[]).includes(m)) throw new Error(`--modes: unknown mode "${m}"`);
  return m as Mode;
});

interface Round {
  p50: number;
  p99: number;
  max: number;
  errors: number;
  builds: number[];
  /** Ring changes that took effect during the run (snapshots arriving during a build are coalesced). */
  applied: number;
  loopMax: number;
}

/** The proxy's next message of `type`. */
function reply<T>(child: ChildProcess, type: string, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} from the proxy in ${timeoutMs} ms`)), timeoutMs);
    const on = (message: { type: string }) => {
      if (message.type !== type) return;
      clearTimeout(timer);
      child.off("message", on);
      resolve(message as T);
    };
    child.on("message", on);
  });
}

/** Sends `rate` requests a second for `ms`, open loop; resolves with each request's latency from when it was due. */
async function load(
  pool: Pool,
  ms: number,
  during?: (elapsed: number) => void,
): Promise<{ latencies: number[]; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= ms) break;
    during?.(elapsed);
    const due = Math.floor((elapsed / 1000) * rate);
    for (; sent < due; sent++) {
      const dueAt = start + (sent / rate) * 1000;
      pending.push(
        pool.request({ method: "GET", path: `/users/${sent % 1024}` }).then(
          async (res) => {
            await res.body.dump();
            if (res.statusCode !== 200) errors++;
            latencies.push(performance.now() - dueAt);
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await sleep(2);
  }
  await Promise.race([Promise.all(pending), sleep(60_000)]);
  return { latencies, errors };
}

async function round(mode: Mode, ports: number[]): Promise<Round> {
  if (mode === "workers") return workersRound(ports);
  const child = fork(
    proxyScript,
    [mode === "inline" ? "inline" : "thread", ports.join(","), String(memberCount), String(partitions)],
    {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    },
  );
  children.push(child);
  try {
    const { port } = await reply<{ port: number }>(child, "ready");
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 128 });
    await load(pool, 1000); // warm-up, not counted
    const builds: number[] = [];
    child.on("message", (m: { type: string; ms: number }) => {
      if (m.type === "built") builds.push(m.ms);
    });
    child.send({ type: "reset" });
    let changes = 0;
    const { latencies, errors } = await load(pool, seconds * 1000, (elapsed) => {
      // Changes at 1 s, 1 + every, …: each one a full rebuild.
      if (mode !== "no change" && elapsed >= 1000 + changes * every * 1000) {
        child.send({ type: "churn", member: 7 });
        changes++;
      }
    });
    const delayReply = reply<{ max: number }>(child, "delay");
    child.send({ type: "delay" });
    const delay = await delayReply;
    // Let the last rebuild finish so its time is reported too.
    for (let i = 0; i < 600 && builds.length < changes; i++) await sleep(100);
    await pool.close();
    child.send({ type: "stop" });
    await new Promise((resolve) => child.once("exit", resolve));
    const sorted = latencies.sort((a, b) => a - b);
    return {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      errors,
      builds,
      applied: builds.length,
      loopMax: delay.max,
    };
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

/** The same load and changes against `ringroute serve --workers 2` over a members file. */
async function workersRound(ports: number[]): Promise<Round> {
  const file = join(dir, "members.txt");
  const out = new Set<number>();
  const writeMembers = () => {
    const lines = Array.from({ length: memberCount }, (_, i) => i)
      .filter((i) => !out.has(i))
      .map((i) => `m${String(i).padStart(4, "0")} http://127.0.0.1:${ports[i % ports.length]}\n`);
    writeFileSync(`${file}.tmp`, lines.join(""));
    renameSync(`${file}.tmp`, file);
  };
  writeMembers();
  const config = join(dir, "ringroute.yaml");
  writeFileSync(
    config,
    `membership:\n  file:\n    path: ${file}\n    pollInterval: 100ms\nring:\n  partitions: ${partitions}\n  placement: balanced\n`,
  );
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      cli,
      "serve",
      "--config",
      config,
      "--listen",
      `127.0.0.1:${port}`,
      "--admin",
      `127.0.0.1:${adminPort}`,
      "--workers",
      "2",
    ],
    { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RINGROUTE_CONFIG: "" } },
  );
  children.push(child);
  const ringChanges = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return Number(/^ringroute_ring_changes_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
  };
  try {
    await waitForHttp(port, "serve --workers 2", 300);
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 128 });
    await load(pool, 1000); // warm-up, not counted
    const before = await ringChanges();
    let changes = 0;
    const { latencies, errors } = await load(pool, seconds * 1000, (elapsed) => {
      if (elapsed >= 1000 + changes * every * 1000) {
        if (out.has(7)) out.delete(7);
        else out.add(7);
        writeMembers();
        changes++;
      }
    });
    await pool.close();
    await sleep(2_000); // a change that was still being built
    const applied = (await ringChanges()) - before;
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    const sorted = latencies.sort((a, b) => a - b);
    return {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      errors,
      builds: [],
      applied,
      loopMax: Number.NaN,
    };
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

async function main(): Promise<void> {
  const ports = await startBackends(dir, 3, children);
  const results = new Map<Mode, Round[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? modes : [...modes].reverse();
    for (const mode of order) {
      const result = await round(mode, ports);
      results.get(mode)?.push(result);
      process.stderr.write(
        `round ${r + 1}/${rounds} ${mode}: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(0)} ms, event loop max ${result.loopMax.toFixed(0)} ms, ${result.applied} changes applied, builds ${result.builds.map((b) => b.toFixed(0)).join("/")} ms${result.errors ? `, ${result.errors} errors` : ""}\n`,
      );
    }
  }
  const fmt = (values: number[], digits = 1) =>
    values.every(Number.isNaN)
      ? "–"
      : `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
  const rows = modes.map((mode) => {
    const rs = results.get(mode) ?? [];
    const builds = rs.flatMap((x) => x.builds);
    return [
      mode,
      fmt(rs.map((x) => x.p50)),
      fmt(rs.map((x) => x.p99)),
      fmt(
        rs.map((x) => x.max),
        0,
      ),
      fmt(
        rs.map((x) => x.loopMax),
        0,
      ),
      builds.length ? fmt(builds, 0) : "–",
      rs.map((x) => x.applied).join(", "),
      rs.reduce((n, x) => n + x.errors, 0),
    ];
  });
  process.stdout.write(
    `P = ${partitions}, n = ${memberCount} (balanced, R = 3), ${rate} req/s open loop for ${seconds} s, a ring change every ${every} s; median (min–max) of ${rounds} rounds\n\n`,
  );
  process.stdout.write(
    `${markdownTable(["ring builds", "p50 ms", "p99 ms", "max ms", "event loop stall max ms", "change → new ring ms", "changes applied", "errors"], rows)}\n`,
  );
}

await main();
process.exit(0);
