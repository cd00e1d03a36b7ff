/**
 * HTTP/2 throughput, latency and CPU cost: h2load (Debian nghttp2-client)
 * against ringroute and against HAProxy (`proto h2` on the bind, `proto h2`
 * to the servers), with the same members, one process each, rounds
 * alternating between targets so drift on a shared machine hits every
 * target alike. For each target it prints min/median/max req/s, median p99
 * (from h2load's per-request log) and requests per CPU-second of the proxy's
 * process tree, read from /proc; ratios to HAProxy are taken round by round
 * and printed as the median with the range.
 *
 *   npm run bench:h2 -- [--duration 5] [--runs 5] [--warmup 2] [--clients 16] [--streams 4]
 *                       [--keys 10000] [--client h2|h1] [--targets NAME,NAME] [--no-pin]
 *
 * Members: one nginx process (one worker) answering 200 from memory on six
 * ports, three HTTP/1.1 and three h2c (`listen … http2` in clear: prior
 * knowledge). Targets, each a proxy and the members it is given:
 *
 * - `haproxy h2c`: HAProxy 1 thread, `balance uri`, `hash-type consistent`,
 *   the h2c members with `proto h2` (the anchor: every ratio is to it);
 * - `haproxy h1`: the same HAProxy in front of the HTTP/1.1 members;
 * - `ringroute h1`: ringroute in front of the HTTP/1.1 members (h2 streams
 *   forwarded as HTTP/1.1);
 * - `ringroute h2c`: ringroute in front of the h2c members (`protocol: h2c`).
 *
 * `--client h1` drives every target with `h2load --h1` instead (HAProxy's
 * bind then speaks HTTP/1.1, and `haproxy h1` is the anchor): the same
 * harness on ringroute's HTTP/1.1 listener.
 * With two or more cores the proxies and members are pinned to CPU 0 and
 * h2load to CPU 1, as in bench:proxy (`--no-pin` to leave them free).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { markdownTable, median } from "./stats.ts";
import { cpuSeconds, freePort, installed, percentile } from "./workers/common.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    runs: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    clients: { type: "string", default: "16" },
    streams: { type: "string", default: "4" },
    keys: { type: "string", default: "10000" },
    client: { type: "string", default: "h2" },
    targets: { type: "string" },
    "no-pin": { type: "boolean", default: false },
  },
});
const duration = Number(values.duration);
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const clients = Number(values.clients);
const streams = Number(values.streams);
const keys = Number(values.keys);
const client = values.client as string;
if (client !== "h2" && client !== "h1") throw new Error(`--client must be h2 or h1, got ${client}`);
const wanted = (
  values.targets ?? (client === "h2" ? "haproxy h2c,haproxy h1,ringroute h1,ringroute h2c" : "haproxy h1,ringroute h1")
)
  .split(",")
  .map((name) => name.trim());
// h2load --h1 fails every response HAProxy turns from h2 into HTTP/1.1 (its status line has no reason
// phrase), so with HTTP/1.1 clients the anchor is HAProxy in front of the HTTP/1.1 members.
const anchor = client === "h2" ? "haproxy h2c" : "haproxy h1";

/** CPU lists for `taskset`: proxies and members on one core, h2load on another. */
const pinning =
  !values["no-pin"] && availableParallelism() >= 2 && installed("taskset") ? { proxy: "0", load: "1" } : undefined;
const pinned = (command: string, args: string[], cpus: string | undefined): [string, string[]] =>
  cpus === undefined ? [command, args] : ["taskset", ["-c", cpus, command, ...args]];

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ringroute-bench-h2-"));
const children: ChildProcess[] = [];
let stopping = false;

function start(command: string, args: string[]): ChildProcess {
  [command, args] = pinned(command, args, pinning?.proxy);
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`${command} exited (${code ?? signal}): ${stderr}\n`);
  });
  children.push(child);
  return child;
}

function stopAll(): void {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

interface Target {
  name: string;
  port: number;
  pid: number;
}

interface Result {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  /** Requests per CPU-second of the target's process tree. */
  perCpu: number;
}

/** The paths every run cycles through, one URI a line (h2load takes the scheme, host and port of the first). */
function uriFile(port: number): string {
  const file = join(dir, `uris-${port}.txt`);
  const lines = Array.from({ length: keys }, (_, i) => `http://127.0.0.1:${port}/t/users/${i}`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** One h2load run of `seconds` against `target`; CPU is read around it, latency from the per-request log. */
async function h2load(target: Target, seconds: number): Promise<Result> {
  const log = join(dir, `h2load-${target.port}.log`);
  const cpuBefore = cpuSeconds(target.pid);
  const [command, args] = pinned(
    "h2load",
    [
      ...(client === "h1" ? ["--h1"] : []),
      "-t1",
      `-c${clients}`,
      `-m${streams}`,
      `-D${seconds}`,
      `--log-file=${log}`,
      "-i",
      uriFile(target.port),
    ],
    pinning?.load,
  );
  const { stdout: out } = await promisify(execFile)(command, args, {
    encoding: "utf8",
    timeout: (seconds + 30) * 1000,
    maxBuffer: 16 * 1024 * 1024,
  });
  await sleep(200);
  const cpu = cpuSeconds(target.pid) - cpuBefore;
  const counts =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (counts === null || codes === null) throw new Error(`${target.name}: h2load printed no request counts:\n${out}`);
  // Succeeded: done with a 2xx or 3xx status; failed: done otherwise (errors, timeouts, 4xx, 5xx). Streams
  // still open when the duration ends are neither (their status may be counted already).
  const ok = Number(counts[4]);
  const errors = Number(counts[5]);
  if (errors > 0) process.stderr.write(`${target.name}: ${counts[0]}; ${codes[0]}\n`);
  // The log: "start (µs since the epoch)\tstatus\tduration (µs)" a request.
  const durations = readFileSync(log, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => Number(line.split("\t")[2]) / 1000)
    .sort((a, b) => a - b);
  const elapsed = Number(/finished in ([\d.]+)s/.exec(out)?.[1] ?? seconds);
  return {
    rps: ok / elapsed,
    requests: ok,
    p50: percentile(durations, 0.5),
    p99: percentile(durations, 0.99),
    errors,
    perCpu: ok / cpu,
  };
}

async function waitUntilServing(target: Target): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const { stdout } = await promisify(execFile)(
        "h2load",
        [...(client === "h1" ? ["--h1"] : []), "-n1", "-c1", `http://127.0.0.1:${target.port}/t/users/1`],
        { encoding: "utf8", timeout: 10_000 },
      );
      if (/1 succeeded/.test(stdout) && /1 2xx/.test(stdout)) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`${target.name}: no 200 over ${client} on port ${target.port}`);
}

/** nginx, one worker: `h1` ports speak HTTP/1.1, `h2c` ports h2c with prior knowledge (`listen … http2`). */
async function startMembers(): Promise<{ h1: number[]; h2c: number[] }> {
  if (!installed("nginx"))
    throw new Error("nginx is not installed (Debian package nginx-light); it serves the members");
  mkdirSync(join(dir, "logs"), { recursive: true });
  chmodSync(dir, 0o755);
  const h1 = [await freePort(), await freePort(), await freePort()];
  const h2c = [await freePort(), await freePort(), await freePort()];
  const server = (port: number, http2: boolean) =>
    `    server { listen 127.0.0.1:${port}${http2 ? " http2" : ""}; location / { return 200 "member ${port}\\n"; } }`;
  const template = readFileSync(fileURLToPath(new URL("./proxy/nginx-backends.conf", import.meta.url)), "utf8");
  const servers = [...h1.map((p) => server(p, false)), ...h2c.map((p) => server(p, true))].join("\n");
  writeFileSync(join(dir, "members.conf"), template.replaceAll("{{DIR}}", dir).replaceAll("{{SERVERS}}", servers));
  start("nginx", ["-p", `${dir}/`, "-c", join(dir, "members.conf")]);
  return { h1, h2c };
}

/** HAProxy, one thread, consistent hashing on the URI, `proto h2` on the bind (h2 clients) and to h2c members. */
async function startHaproxy(name: string, members: number[], protocol: "h1" | "h2c"): Promise<Target> {
  if (!installed("haproxy")) throw new Error("haproxy is not installed (Debian package haproxy)");
  const port = await freePort();
  const config = [
    "global",
    "    nbthread 1",
    "    maxconn 4096",
    "defaults",
    "    mode http",
    "    timeout connect 2s",
    "    timeout client 30s",
    "    timeout server 30s",
    "    option http-keep-alive",
    "    http-reuse always",
    "frontend bench",
    `    bind 127.0.0.1:${port}${client === "h2" ? " proto h2" : ""}`,
    "    default_backend pool",
    "backend pool",
    "    balance uri",
    "    hash-type consistent",
    ...members.map((p, i) => `    server m${i} 127.0.0.1:${p}${protocol === "h2c" ? " proto h2" : ""}`),
    "",
  ].join("\n");
  const file = join(dir, `haproxy-${port}.cfg`);
  writeFileSync(file, config);
  const child = start("haproxy", ["-db", "-f", file]);
  return { name, port, pid: child.pid as number };
}

/** ringroute, one process, its defaults (access log on, http2 on), the members given with their protocol. */
async function startRingroute(name: string, members: number[], protocol: "h1" | "h2c"): Promise<Target> {
  const port = await freePort();
  const file = join(dir, `ringroute-${port}.yaml`);
  const list = members.map((p, i) => `      - { name: m${i}, url: "http://127.0.0.1:${p}", protocol: ${protocol} }`);
  writeFileSync(
    file,
    [`listen: 127.0.0.1:${port}`, "admin: 127.0.0.1:0", "membership:", "  static:", "    members:", ...list, ""].join(
      "\n",
    ),
  );
  const child = start(process.execPath, ["--import", "tsx", cli, "serve", "--config", file]);
  return { name, port, pid: child.pid as number };
}

async function main(): Promise<void> {
  if (!installed("h2load")) throw new Error("h2load is not installed (Debian package nghttp2-client)");
  const members = await startMembers();
  const makers: Record<string, () => Promise<Target>> = {
    "haproxy h2c": () => startHaproxy("haproxy h2c", members.h2c, "h2c"),
    "haproxy h1": () => startHaproxy("haproxy h1", members.h1, "h1"),
    "ringroute h1": () => startRingroute("ringroute h1", members.h1, "h1"),
    "ringroute h2c": () => startRingroute("ringroute h2c", members.h2c, "h2c"),
  };
  for (const name of wanted) if (makers[name] === undefined) throw new Error(`unknown target ${name}`);
  const names = wanted.includes(anchor) ? wanted : [anchor, ...wanted];
  const targets: Target[] = [];
  for (const name of names) targets.push(await (makers[name] as () => Promise<Target>)());
  for (const target of targets) await waitUntilServing(target);

  process.stdout.write(
    `h2load ${client === "h1" ? "--h1 " : ""}-t1 -c${clients} -m${streams} -D${duration}, ${keys} paths, ` +
      `${runs} alternating rounds (min / median / max; ratios: median [range] of each round's ratio to ${anchor}); ` +
      `one process per proxy; members: one nginx worker, 3 HTTP/1.1 and 3 h2c ports; ` +
      `${pinning ? "proxies and members on CPU 0, h2load on CPU 1" : "not pinned"}\n`,
  );
  for (const target of targets) if (warmup > 0) await h2load(target, warmup);
  const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
  for (let run = 0; run < runs; run++) {
    // Each round starts one target further on, so no target always runs right after the same one.
    const order = targets.map((_, i) => targets[(i + run) % targets.length] as Target);
    for (const target of order) {
      const result = await h2load(target, duration);
      results.get(target.name)?.push(result);
      process.stderr.write(
        `run ${run + 1}/${runs} ${target.name}: ${result.rps.toFixed(0)} req/s, ` +
          `${result.perCpu.toFixed(0)} req/CPU-s, p99 ${result.p99.toFixed(2)} ms` +
          `${result.errors ? `, ${result.errors} errors` : ""}\n`,
      );
    }
  }
  const anchorRounds = results.get(anchor) as Result[];
  const ratio = (name: string, figure: (r: Result) => number): string => {
    const ratios = (results.get(name) ?? []).map((r, i) => figure(r) / figure(anchorRounds[i] as Result));
    return `${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`;
  };
  const rows = targets.map(({ name }) => {
    const r = results.get(name) ?? [];
    const rps = r.map((x) => x.rps);
    return [
      name,
      `${Math.min(...rps).toFixed(0)} / ${median(rps).toFixed(0)} / ${Math.max(...rps).toFixed(0)}`,
      median(r.map((x) => x.p50)).toFixed(2),
      median(r.map((x) => x.p99)).toFixed(2),
      median(r.map((x) => x.perCpu)).toFixed(0),
      ratio(name, (x) => x.perCpu),
      ratio(name, (x) => x.p99),
      r.reduce((n, x) => n + x.errors, 0),
    ];
  });
  process.stdout.write(
    `\n${markdownTable(
      [
        "target",
        "req/s min / med / max",
        "p50 ms",
        "p99 ms",
        "req/CPU-s",
        `vs ${anchor}`,
        `p99 vs ${anchor}`,
        "errors",
      ],
      rows,
    )}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench:h2: ${error?.message ?? error}\n`);
    process.exit(1);
  },
);
