/**
 * One worker against two: `ringroute serve --workers 1` and `--workers 2`
 * side by side in front of the same nginx backends, driven in alternating
 * rounds by wrk. Besides req/s it reads, from /proc, the CPU time of the
 * proxy's process tree (requests per CPU-second) and how busy the whole
 * machine was, since wrk, nginx and the proxy share the same cores.
 *
 *   npm run bench:workers -- [--duration 10] [--runs 5] [--connections 64]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { markdownTable, median } from "./stats.ts";
import { cpuSeconds, freePort, installed, startBackends, type WrkResult, waitForHttp, wrk } from "./workers/common.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    runs: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    warmup: { type: "string", default: "2" },
  },
});
const duration = Number(values.duration);
const runs = Number(values.runs);
const connections = Number(values.connections);
const warmup = Number(values.warmup);

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ringroute-workers-bench-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machine(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] as string).trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] as number) + (fields[4] as number); // idle + iowait
  return { busy: total - idle, total };
}

interface Run extends WrkResult {
  /** Requests per CPU-second of the proxy's process tree. */
  perCpu: number;
  /** Cores the proxy tree kept busy, on average. */
  proxyCores: number;
  /** Cores the whole machine kept busy (wrk, nginx, the proxy and everyone else). */
  machineCores: number;
}

async function main(): Promise<void> {
  if (!installed("wrk")) throw new Error("wrk is not installed (Debian package wrk)");
  const ports = await startBackends(dir, 3, children);
  const members = ports.map((port, i) => `b${i + 1}=http://127.0.0.1:${port}`).join(",");
  const targets: { name: string; workers: number; port: number; child: ChildProcess }[] = [];
  for (const workers of [1, 2]) {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        cli,
        "serve",
        "--listen",
        `127.0.0.1:${port}`,
        "--admin",
        "127.0.0.1:0",
        "--members",
        members,
        "--workers",
        String(workers),
      ],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RINGROUTE_CONFIG: "" } },
    );
    children.push(child);
    targets.push({ name: `ringroute, ${workers} worker${workers > 1 ? "s" : ""}`, workers, port, child });
  }
  for (const t of targets) await waitForHttp(t.port, t.name);
  for (const t of targets) if (warmup > 0) wrk(t.port, warmup, connections);

  const results = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const cpuBefore = cpuSeconds(t.child.pid as number);
      const machineBefore = machine();
      const result = wrk(t.port, duration, connections);
      const cpu = cpuSeconds(t.child.pid as number) - cpuBefore;
      const machineAfter = machine();
      const cores = availableParallelism();
      const r: Run = {
        ...result,
        perCpu: result.requests / cpu,
        proxyCores: cpu / duration,
        machineCores: ((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)) * cores,
      };
      results.get(t.name)?.push(r);
      process.stderr.write(
        `run ${run + 1}/${runs} ${t.name}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.perCpu.toFixed(0)} req/CPU-s, proxy ${r.proxyCores.toFixed(2)} cores, machine ${r.machineCores.toFixed(2)} of ${cores} cores busy${r.errors ? `, ${r.errors} errors` : ""}\n`,
      );
    }
  }

  const one = results.get(targets[0]?.name as string) ?? [];
  const rows = targets.map((t) => {
    const r = results.get(t.name) ?? [];
    const rps = r.map((x) => x.rps);
    return [
      t.name,
      `${median(rps).toFixed(0)} (${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)})`,
      `${(median(rps) / median(one.map((x) => x.rps))).toFixed(2)}×`,
      median(r.map((x) => x.p50)).toFixed(2),
      median(r.map((x) => x.p99)).toFixed(2),
      median(r.map((x) => x.perCpu)).toFixed(0),
      median(r.map((x) => x.proxyCores)).toFixed(2),
      median(r.map((x) => x.machineCores)).toFixed(2),
      r.reduce((n, x) => n + x.errors, 0),
    ];
  });
  process.stdout.write(
    `wrk -t1 -c${connections} ${duration} s, 3 nginx backends (1 nginx worker), ${runs} alternating rounds, median (min–max); ${availableParallelism()} cores\n\n`,
  );
  process.stdout.write(
    `${markdownTable(["proxy", "req/s", "vs 1 worker", "p50 ms", "p99 ms", "req per CPU-s", "proxy cores busy", "machine cores busy", "errors"], rows)}\n`,
  );
}

await main();
process.exit(0);
