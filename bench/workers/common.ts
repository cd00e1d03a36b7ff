/**
 * What the workers benchmarks share: nginx backends answering 200 from
 * memory, free loopback ports, wrk runs, and CPU time read from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const paths = fileURLToPath(new URL("../proxy/paths.lua", import.meta.url));

export function installed(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function waitForHttp(port: number, what: string, seconds = 120): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/users/1`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`${what}: nothing answers 200 on port ${port}`);
}

/** One nginx process, one worker, serving 200 from memory on `count` ports. */
export async function startBackends(dir: string, count: number, children: ChildProcess[]): Promise<number[]> {
  if (!installed("nginx"))
    throw new Error("nginx is not installed (Debian package nginx-light); it serves the backends");
  mkdirSync(join(dir, "logs"), { recursive: true });
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const template = readFileSync(fileURLToPath(new URL("../proxy/nginx-backends.conf", import.meta.url)), "utf8");
  const servers = ports
    .map((port) => `    server { listen 127.0.0.1:${port}; location / { return 200 "backend ${port}\\n"; } }`)
    .join("\n");
  writeFileSync(join(dir, "backends.conf"), template.replaceAll("{{DIR}}", dir).replaceAll("{{SERVERS}}", servers));
  children.push(spawn("nginx", ["-p", `${dir}/`, "-c", join(dir, "backends.conf")], { stdio: "ignore" }));
  for (const port of ports) await waitForHttp(port, "nginx backends");
  return ports;
}

/** Milliseconds from wrk's `1.23ms` / `456.00us` / `1.02s`. */
function ms(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * (scale[match[2] as string] as number);
}

export interface WrkResult {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
}

export function wrk(port: number, seconds: number, connections: number, threads = 1): WrkResult {
  const out = execFileSync(
    "wrk",
    [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--latency", "-s", paths, `http://127.0.0.1:${port}`],
    { encoding: "utf8", timeout: (seconds + 30) * 1000 },
  );
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ""),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ""),
    errors: non2xx + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0),
  };
}

/** CPU seconds (user + system) a process and its live children have used, from /proc. */
export function cpuSeconds(pid: number): number {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime
      const children = readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim();
      for (const child of children ? children.split(" ") : []) visit(Number(child));
    } catch {
      // gone meanwhile
    }
  };
  visit(pid);
  return total;
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
