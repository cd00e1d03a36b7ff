/**
 * Proxy throughput, latency and CPU cost: the same three backends behind
 * ringroute, behind HAProxy (`balance uri`, `hash-type consistent`) and
 * behind nginx (`hash $request_uri consistent`), one worker each, driven by
 * wrk with the same load, rounds alternating between targets so drift hits
 * every proxy alike. For each workload (tiny, 1 KB and 64 KB responses,
 * 4 KB POSTs) it prints min/median/max req/s, median p50/p99 and requests
 * per CPU-second of each proxy's process tree, read from /proc (so other
 * load on a shared machine does not distort the comparison), plus
 * ringroute's garbage per request (from --trace-gc).
 *
 *   npm run bench:proxy -- [--duration 5] [--runs 5] [--connections 64] [--keys 10000]
 *                          [--workloads tiny,1k,64k,post4k] [--no-pin] [--no-open-loop] [--profile]
 *
 * Backends are one nginx process (one worker, three ports) answering from
 * memory or the page cache: the cheapest backend there is, so the proxy is
 * what gets measured. Requests cycle over `--keys` distinct paths (10,000 by
 * default; 1,024 was the earlier setup). Each proxy's ratio to HAProxy is
 * taken round by round (the rounds alternate, so both saw the same machine)
 * and printed as the median with the range over rounds.
 *
 * With two or more cores the proxies and backends are pinned to CPU 0 and
 * the load generators to CPU 1 (`--no-pin` to leave them free). Then, for
 * the tiny workload, an open-loop generator (bench/proxy/openloop.go)
 * offers half of HAProxy's measured maximum rate to each proxy in turn and
 * reports p99 from each request's due time, so queueing shows (wrk, closed
 * loop, slows down with the proxy and hides it).
 *
 * `--profile` adds one extra tiny round with ringroute under --cpu-prof and
 * prints its top frames by self time.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { markdownTable, median } from "./stats.ts";
import { freePort, installed } from "./workers/common.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    runs: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    warmup: { type: "string", default: "2" },
    workloads: { type: "string", default: "tiny,1k,64k,post4k" },
    keys: { type: "string", default: "10000" },
    "no-pin": { type: "boolean", default: false },
    "no-open-loop": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
  },
});
const duration = Number(values.duration);
const runs = Number(values.runs);
const connections = Number(values.connections);
const warmup = Number(values.warmup);
const keys = Number(values.keys);
/** CPU lists for `taskset`: proxies and backends on one core, load generators on another. */
const pinning =
  !values["no-pin"] && availableParallelism() >= 2 && installed("taskset") ? { proxy: "0", load: "1" } : undefined;
const pinned = (command: string, args: string[], cpus: string | undefined): [string, string[]] =>
  cpus === undefined ? [command, args] : ["taskset", ["-c", cpus, command, ...args]];

interface Workload {
  name: string;
  /** wrk script arguments: path prefix, method, body bytes. */
  args: string[];
}
const allWorkloads: Workload[] = [
  { name: "tiny", args: ["/t", "GET", "0"] },
  { name: "1k", args: ["/k", "GET", "0"] },
  { name: "64k", args: ["/m", "GET", "0"] },
  { name: "post4k", args: ["/t", "POST", "4096"] },
];
const workloads = (values.workloads as string).split(",").map((name) => {
  const workload = allWorkloads.find((w) => w.name === name);
  if (workload === undefined) throw new Error(`unknown workload ${name}: one of ${allWorkloads.map((w) => w.name)}`);
  return workload;
});

const here = (name: string) => fileURLToPath(new URL(`./proxy/${name}`, import.meta.url));
const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ringroute-bench-"));
const children: ChildProcess[] = [];
const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function template(name: string, fill: Record<string, string>): string {
  let text = readFileSync(here(name), "utf8");
  for (const [key, value] of Object.entries(fill)) text = text.replaceAll(`{{${key}}}`, value);
  return text;
}

/** Starts a proxy or backend process (pinned to the proxies' core when pinning). */
function start(command: string, args: string[], onStdout?: (text: string) => void): ChildProcess {
  [command, args] = pinned(command, args, pinning?.proxy);
  const child = spawn(command, args, { stdio: ["ignore", onStdout ? "pipe" : "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  if (onStdout) child.stdout?.setEncoding("utf8").on("data", onStdout);
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`${command} exited (${code ?? signal}): ${stderr}\n`);
  });
  children.push(child);
  return child;
}

async function waitForHttp(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/t/users/1`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`nothing answers 200 on port ${port}`);
}

/** CPU seconds (user + system) used so far by `pid` and every process below it, from /proc. */
function treeCpu(pid: number): number {
  const parents = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name (which may hold spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), Number(fields[1]));
      cpu.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / ticks);
    } catch {}
  }
  let total = 0;
  for (const [p, seconds] of cpu) {
    for (let q: number | undefined = p; q !== undefined && q > 1; q = parents.get(q)) {
      if (q === pid) {
        total += seconds;
        break;
      }
    }
  }
  return total;
}

interface Result {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  /** Requests per CPU-second of the target's process tree. */
  perCpu: number;
  /** Bytes of garbage collected per request (ringroute only). */
  garbage: number | undefined;
}

/** Milliseconds from wrk's `1.23ms` / `456.00us` / `1.02s`. */
function ms(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * (scale[match[2] as string] as number);
}

interface Target {
  name: string;
  port: number;
  pid: number;
  /** Bytes collected by the GC so far (ringroute, from --trace-gc). */
  collected?: () => number;
}

async function wrk(target: Target, workload: Workload, seconds: number): Promise<Result> {
  const cpuBefore = treeCpu(target.pid);
  const gcBefore = target.collected?.() ?? 0;
  // Asynchronous, so that the --trace-gc lines keep being read while wrk runs.
  const [command, args] = pinned(
    "wrk",
    [
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      here("paths.lua"),
      `http://127.0.0.1:${target.port}`,
      "--",
      ...workload.args,
      String(keys),
    ],
    pinning?.load,
  );
  const { stdout: out } = await promisify(execFile)(command, args, {
    encoding: "utf8",
    timeout: (seconds + 30) * 1000,
  });
  await sleep(200);
  const cpu = treeCpu(target.pid) - cpuBefore;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
  if (errors > 0) {
    const lines = out.split("\n").filter((line) => /Socket errors|Non-2xx/.test(line));
    process.stderr.write(`${target.name}: ${lines.join("; ").trim()}\n`);
  }
  const garbage = target.collected === undefined ? undefined : (target.collected() - gcBefore) / requests;
  return { rps, requests, p50, p99, errors, perCpu: requests / cpu, garbage };
}

let stopping = false;
function stopAll(): void {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

/** Starts ringroute; with `cpuProfileDir` under --cpu-prof. */
async function startRingroute(members: string, cpuProfileDir?: string, accessLog = true): Promise<Target> {
  const port = await freePort();
  let collected = 0;
  let partial = "";
  const child = start(
    process.execPath,
    [
      "--trace-gc",
      ...(cpuProfileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfileDir]),
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
      "--access-log",
      String(accessLog),
    ],
    (text) => {
      // --trace-gc lines: "… Scavenge 12.3 (14.0) -> 2.1 (15.0) MB, …": what each collection freed.
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const match = /(?:Scavenge|Mark-Compact|Mark-sweep)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/.exec(
          line,
        );
        if (match) collected += Math.max(0, Number(match[1]) - Number(match[2])) * 1024 * 1024;
      }
    },
  );
  const name = accessLog ? "ringroute" : "ringroute, access log off";
  return { name, port, pid: child.pid as number, collected: () => collected };
}

/** Top frames by self time in a V8 .cpuprofile. */
function topFrames(file: string, count: number): string {
  const profile = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id);
    if (frame === undefined) continue;
    const where = frame.url === "" ? "" : ` ${basename(frame.url)}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || "(anonymous)"}${where}`;
    self.set(name, (self.get(name) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const rows = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, n]) => [`${((100 * n) / total).toFixed(1)}%`, name]);
  return markdownTable(["self", "frame"], rows);
}

interface OpenLoopResult {
  sent: number;
  completed: number;
  errors: number;
  p50: number;
  p99: number;
  p999: number;
}

/** Builds bench/proxy/openloop.go with Debian's Go, standard library only. */
function buildOpenLoop(): string {
  const binary = join(dir, "openloop");
  execFileSync("go", ["build", "-o", binary, here("openloop.go")], {
    env: { ...process.env, GO111MODULE: "off", GOFLAGS: "", GOCACHE: join(dir, "gocache") },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return binary;
}

/**
 * p99 at a fixed offered rate (half of HAProxy's closed-loop maximum), every
 * target in turn for `runs` alternating rounds: the latency a user sees when
 * the proxy is not saturated, measured from each request's due time.
 */
async function openLoop(targets: Target[], rate: number): Promise<void> {
  if (!installed("go")) {
    process.stderr.write("go is not installed (Debian package golang-go): the open-loop p99 is left out\n");
    return;
  }
  const binary = buildOpenLoop();
  const proxies = targets.filter((t) => !t.name.startsWith("backend"));
  const results = new Map<string, OpenLoopResult[]>(proxies.map((t) => [t.name, []]));
  for (let run = 0; run < runs; run++) {
    for (const target of proxies) {
      const [command, args] = pinned(
        binary,
        [
          "-url",
          `http://127.0.0.1:${target.port}`,
          "-rate",
          String(Math.round(rate)),
          "-duration",
          `${duration}s`,
          "-connections",
          String(connections),
          "-keys",
          String(keys),
        ],
        pinning?.load,
      );
      const { stdout } = await promisify(execFile)(command, args, {
        encoding: "utf8",
        timeout: (duration + 60) * 1000,
      });
      const result = JSON.parse(stdout) as OpenLoopResult;
      results.get(target.name)?.push(result);
      process.stderr.write(
        `open loop ${Math.round(rate)}/s run ${run + 1}/${runs} ${target.name}: p99 ${result.p99.toFixed(2)} ms` +
          `${result.errors ? `, ${result.errors} errors` : ""}\n`,
      );
    }
  }
  const haproxy = results.get("haproxy") ?? [];
  const rows = proxies.map(({ name }) => {
    const r = results.get(name) ?? [];
    const ratios = r.map((x, i) => x.p99 / (haproxy[i] as OpenLoopResult).p99);
    return [
      name,
      median(r.map((x) => x.p50)).toFixed(2),
      median(r.map((x) => x.p99)).toFixed(2),
      median(r.map((x) => x.p999)).toFixed(2),
      `${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`,
      r.reduce((n, x) => n + x.errors, 0),
    ];
  });
  process.stdout.write(
    `\ntiny at a fixed ${Math.round(rate)} req/s (half of HAProxy's maximum), open loop, ` +
      `${pinning ? `generator on CPU ${pinning.load}, proxies on CPU ${pinning.proxy}` : "unpinned"}\n\n` +
      `${markdownTable(["target", "p50 ms", "p99 ms", "p99.9 ms", "p99 vs HAProxy", "errors"], rows)}\n`,
  );
}

async function main(): Promise<void> {
  if (!installed("wrk")) throw new Error("wrk is not installed (Debian package wrk)");
  if (!installed("nginx"))
    throw new Error("nginx is not installed (Debian package nginx-light); it serves the backends");
  mkdirSync(join(dir, "logs"), { recursive: true });
  mkdirSync(join(dir, "www"), { recursive: true });
  // nginx started as root reads files as an unprivileged worker: the temporary directory must be readable.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "www", "1k"), Buffer.alloc(1024, "k"));
  writeFileSync(join(dir, "www", "64k"), Buffer.alloc(64 * 1024, "m"));

  const backendPorts = [await freePort(), await freePort(), await freePort()];
  const backends = template("nginx-backends.conf", {
    DIR: dir,
    SERVERS: backendPorts
      .map(
        (port) =>
          `    server { listen 127.0.0.1:${port}; root ${dir}/www;` +
          ` location /t/ { return 200 "backend ${port}\\n"; }` +
          " location /k/ { default_type application/octet-stream; try_files /1k =404; }" +
          " location /m/ { default_type application/octet-stream; try_files /64k =404; } }",
      )
      .join("\n"),
  });
  writeFileSync(join(dir, "backends.conf"), backends);
  const backendProcess = start("nginx", ["-p", `${dir}/`, "-c", join(dir, "backends.conf")]);
  for (const port of backendPorts) await waitForHttp(port);

  const targets: Target[] = [];
  const members = backendPorts.map((port, i) => `b${i + 1}=http://127.0.0.1:${port}`).join(",");
  targets.push(await startRingroute(members));
  // The access log's cost: the same proxy without its one JSON line a request.
  targets.push(await startRingroute(members, undefined, false));

  if (installed("haproxy")) {
    const port = await freePort();
    const cfg = template("haproxy.cfg", {
      PORT: String(port),
      SERVERS: backendPorts.map((p, i) => `    server b${i + 1} 127.0.0.1:${p}`).join("\n"),
    });
    writeFileSync(join(dir, "haproxy.cfg"), cfg);
    const child = start("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")]);
    targets.push({ name: "haproxy", port, pid: child.pid as number });
  } else {
    process.stderr.write("haproxy not installed: its row is left out\n");
  }

  {
    const port = await freePort();
    const conf = template("nginx-proxy.conf", {
      DIR: dir,
      PORT: String(port),
      SERVERS: backendPorts.map((p) => `        server 127.0.0.1:${p};`).join("\n"),
    });
    writeFileSync(join(dir, "proxy.conf"), conf);
    const child = start("nginx", ["-p", `${dir}/`, "-c", join(dir, "proxy.conf")]);
    targets.push({ name: "nginx", port, pid: child.pid as number });
  }
  // The backends alone, through one of their ports: the ceiling every proxy sits under.
  targets.push({
    name: "backend alone (no proxy)",
    port: backendPorts[0] as number,
    pid: backendProcess.pid as number,
  });

  for (const target of targets) await waitForHttp(target.port);

  const cpuModel = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown CPU";
  process.stdout.write(
    `wrk -t1 -c${connections} -d${duration}s, ${keys} paths, ${runs} alternating rounds (min / median / max; ` +
      `ratios: median [range] of each round's ratio); one worker per proxy; 3 nginx backends (one worker); ` +
      `${pinning ? `proxies and backends on CPU ${pinning.proxy}, wrk on CPU ${pinning.load}` : "unpinned"}; ${cpuModel}\n`,
  );
  for (const workload of workloads) {
    for (const target of targets) if (warmup > 0) await wrk(target, workload, warmup);
    const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
    for (let run = 0; run < runs; run++) {
      for (const target of targets) {
        const result = await wrk(target, workload, duration);
        results.get(target.name)?.push(result);
        process.stderr.write(
          `${workload.name} run ${run + 1}/${runs} ${target.name}: ${result.rps.toFixed(0)} req/s, ` +
            `${result.perCpu.toFixed(0)} req/CPU-s, p99 ${result.p99.toFixed(2)} ms` +
            `${result.errors ? `, ${result.errors} errors` : ""}\n`,
        );
      }
    }
    const summary = (name: string) => {
      const r = results.get(name) ?? [];
      const rps = r.map((x) => x.rps);
      const garbage = r.map((x) => x.garbage).filter((g): g is number => g !== undefined);
      return {
        rps: `${Math.min(...rps).toFixed(0)} / ${median(rps).toFixed(0)} / ${Math.max(...rps).toFixed(0)}`,
        p50: median(r.map((x) => x.p50)),
        p99: median(r.map((x) => x.p99)),
        perCpu: median(r.map((x) => x.perCpu)),
        garbage: garbage.length === 0 ? undefined : median(garbage),
        errors: r.reduce((n, x) => n + x.errors, 0),
      };
    };
    const haproxyRounds = results.get("haproxy");
    const haproxy = haproxyRounds === undefined ? undefined : summary("haproxy");
    /** Median [min–max] over rounds of this target's figure divided by HAProxy's in the same round. */
    const ratio = (name: string, figure: (r: Result) => number): string => {
      if (haproxyRounds === undefined) return "-";
      const mine = results.get(name) ?? [];
      const ratios = mine.map((r, i) => figure(r) / figure(haproxyRounds[i] as Result));
      return `${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`;
    };
    const rows = targets.map(({ name }) => {
      const s = summary(name);
      return [
        name,
        s.rps,
        s.p50.toFixed(2),
        s.p99.toFixed(2),
        s.perCpu.toFixed(0),
        ratio(name, (r) => r.perCpu),
        ratio(name, (r) => r.p99),
        s.garbage === undefined ? "" : `${(s.garbage / 1024).toFixed(1)} KB`,
        s.errors,
      ];
    });
    process.stdout.write(
      `\n${workload.name}\n\n${markdownTable(
        [
          "target",
          "req/s min / med / max",
          "p50 ms",
          "p99 ms",
          "req/CPU-s",
          "vs HAProxy",
          "p99 vs HAProxy",
          "garbage/req",
          "errors",
        ],
        rows,
      )}\n`,
    );
    if (workload.name === "tiny" && haproxy !== undefined && !values["no-open-loop"]) {
      await openLoop(targets, median(haproxyRounds?.map((r) => r.rps) ?? []) / 2);
    }
  }

  if (values.profile) {
    const profileDir = join(dir, "profile");
    mkdirSync(profileDir, { recursive: true });
    const profiled = await startRingroute(members, profileDir);
    await waitForHttp(profiled.port);
    await wrk(profiled, workloads[0] as Workload, duration);
    const child = children.find((c) => c.pid === profiled.pid);
    child?.kill("SIGTERM");
    for (let i = 0; i < 100 && readdirSync(profileDir).length === 0; i++) await sleep(100);
    await sleep(500);
    const [file] = readdirSync(profileDir);
    if (file !== undefined) {
      process.stdout.write(`\nringroute CPU profile, ${workloads[0]?.name}: top frames by self time\n\n`);
      process.stdout.write(`${topFrames(join(profileDir, file), 20)}\n`);
    }
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench:proxy: ${error?.message ?? error}\n`);
    process.exit(1);
  },
);
