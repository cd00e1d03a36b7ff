/**
 * Proxy throughput and latency: the same three backends behind ringroute,
 * behind HAProxy (`balance uri`, `hash-type consistent`) and behind nginx
 * (`hash $request_uri consistent`), one worker each, driven by wrk with the
 * same load, rounds interleaved so drift hits every proxy alike. Prints
 * median req/s, p50 and p99 and the ratio to HAProxy.
 *
 *   npm run bench:proxy -- [--duration 10] [--runs 3] [--connections 64]
 *
 * Backends are one nginx process (one worker, three ports) answering 200
 * from memory: the cheapest backend there is, so the proxy is what gets
 * measured, and the same for every proxy. HAProxy and nginx rows appear
 * when those programs are installed (Debian packages haproxy, nginx-light).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { markdownTable, median } from "./stats.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    runs: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
    warmup: { type: "string", default: "2" },
  },
});
const duration = Number(values.duration);
const runs = Number(values.runs);
const connections = Number(values.connections);
const warmup = Number(values.warmup);

const here = (name: string) => fileURLToPath(new URL(`./proxy/${name}`, import.meta.url));
const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ringroute-bench-"));
const children: ChildProcess[] = [];

function installed(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

function template(name: string, fill: Record<string, string>): string {
  let text = readFileSync(here(name), "utf8");
  for (const [key, value] of Object.entries(fill)) text = text.replaceAll(`{{${key}}}`, value);
  return text;
}

function start(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`${command} exited (${code ?? signal}): ${stderr}\n`);
  });
  children.push(child);
  return child;
}

async function waitForHttp(port: number): Promise<void> {
  // A minute: a ringroute started from source under tsx takes a while on a busy machine.
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/users/1`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`nothing answers 200 on port ${port}`);
}

interface Result {
  rps: number;
  /** Requests per CPU-second of the proxy's process (undefined where its pid is not the one doing the work). */
  perCpu: number | undefined;
  p50: number;
  p99: number;
  errors: number;
}

/** Milliseconds from wrk's `1.23ms` / `456.00us` / `1.02s`. */
function ms(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * (scale[match[2] as string] as number);
}

const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** CPU seconds (user + system) process `pid` has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  // After the command name: field 14 (utime) and 15 (stime) of proc(5) are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

function wrk(port: number, seconds: number, pid?: number): Result {
  const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const out = execFileSync(
    "wrk",
    ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", here("paths.lua"), `http://127.0.0.1:${port}`],
    { encoding: "utf8", timeout: (seconds + 30) * 1000 },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const perCpu = pid === undefined ? undefined : requests / (cpuSeconds(pid) - cpuBefore);
  return { rps, perCpu, p50, p99, errors };
}

let stopping = false;
function stopAll(): void {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

async function main(): Promise<void> {
  if (!installed("wrk")) throw new Error("wrk is not installed (Debian package wrk)");
  if (!installed("nginx"))
    throw new Error("nginx is not installed (Debian package nginx-light); it serves the backends");
  mkdirSync(join(dir, "logs"), { recursive: true });

  const backendPorts = [await freePort(), await freePort(), await freePort()];
  const backends = template("nginx-backends.conf", {
    DIR: dir,
    SERVERS: backendPorts
      .map((port) => `    server { listen 127.0.0.1:${port}; location / { return 200 "backend ${port}\\n"; } }`)
      .join("\n"),
  });
  writeFileSync(join(dir, "backends.conf"), backends);
  start("nginx", ["-p", `${dir}/`, "-c", join(dir, "backends.conf")]);
  for (const port of backendPorts) await waitForHttp(port);

  const targets: { name: string; port: number; pid?: number }[] = [];

  const members = backendPorts.map((port, i) => `b${i + 1}=http://127.0.0.1:${port}`).join(",");
  // With and without the access log (one JSON line a request to stdout, here /dev/null): its cost per request.
  for (const [name, accessLog] of [
    ["ringroute", "true"],
    ["ringroute, access log off", "false"],
  ] as const) {
    const port = await freePort();
    const child = start(process.execPath, [
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
      accessLog,
      "--log-level",
      "warn",
    ]);
    targets.push({ name, port, pid: child.pid });
  }

  if (installed("haproxy")) {
    const port = await freePort();
    const cfg = template("haproxy.cfg", {
      PORT: String(port),
      SERVERS: backendPorts.map((p, i) => `    server b${i + 1} 127.0.0.1:${p}`).join("\n"),
    });
    writeFileSync(join(dir, "haproxy.cfg"), cfg);
    const child = start("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")]);
    targets.push({ name: "haproxy", port, pid: child.pid });
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
    start("nginx", ["-p", `${dir}/`, "-c", join(dir, "proxy.conf")]);
    targets.push({ name: "nginx", port });
  }
  // The backends alone, through one of their ports: the ceiling every proxy sits under.
  targets.push({ name: "backend alone (no proxy)", port: backendPorts[0] as number });

  for (const target of targets) await waitForHttp(target.port);
  for (const target of targets) if (warmup > 0) wrk(target.port, warmup);

  const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
  for (let run = 0; run < runs; run++) {
    for (const target of targets) {
      const result = wrk(target.port, duration, target.pid);
      results.get(target.name)?.push(result);
      process.stderr.write(
        `run ${run + 1}/${runs} ${target.name}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms${result.errors ? `, ${result.errors} errors` : ""}\n`,
      );
    }
  }

  const summary = (name: string) => {
    const r = results.get(name) ?? [];
    return {
      rps: median(r.map((x) => x.rps)),
      perCpu: r.every((x) => x.perCpu !== undefined) ? median(r.map((x) => x.perCpu as number)) : undefined,
      p50: median(r.map((x) => x.p50)),
      p99: median(r.map((x) => x.p99)),
      errors: r.reduce((n, x) => n + x.errors, 0),
    };
  };
  const haproxy = results.has("haproxy") ? summary("haproxy") : undefined;
  const rows = targets.map(({ name }) => {
    const s = summary(name);
    return [
      name,
      s.rps.toFixed(0),
      s.perCpu === undefined ? "-" : s.perCpu.toFixed(0),
      s.p50.toFixed(2),
      s.p99.toFixed(2),
      haproxy ? `${(s.rps / haproxy.rps).toFixed(2)}×` : "-",
      haproxy ? `${(s.p99 / haproxy.p99).toFixed(2)}×` : "-",
      s.errors,
    ];
  });
  const cpu = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown CPU";
  process.stdout.write(
    `wrk -t1 -c${connections} -d${duration}s, 1024 paths, median of ${runs} runs; one worker per proxy; ` +
      `3 nginx backends (one worker); ${cpu}\n\n`,
  );
  process.stdout.write(
    `${markdownTable(["target", "req/s", "req/CPU-s", "p50 ms", "p99 ms", "req/s vs HAProxy", "p99 vs HAProxy", "errors"], rows)}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench:proxy: ${error?.message ?? error}\n`);
    process.exit(1);
  },
);
