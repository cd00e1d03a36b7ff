/**
 * The test matrix of `serve`: one process, and two worker processes under a
 * primary; and, for the tests that ask for it, the protocol the client
 * speaks (HTTP/1.1, h2). A test written once with `inEachShape` runs in
 * each, so every feature of `serve` is held to the same behaviour in any
 * shape, for either protocol.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import test, { type ExecutionContext } from "ava";
import type { ClientProtocol } from "../../src/proxy/observer.ts";
import { until } from "./until.ts";

export interface Shape {
  name: string;
  /** The `workers` setting: 1 runs the proxy in the process itself. */
  workers: number;
  /** The protocol the test's client speaks to the proxy (send with `sendAs(shape.client, …)`). */
  client: ClientProtocol;
}

export const shapes: readonly Shape[] = [
  { name: "one process", workers: 1, client: "http/1.1" },
  { name: "workers: 2", workers: 2, client: "http/1.1" },
];

/**
 * Matrix tests of one file running at once. Each starts up to three processes
 * (under tsx when spawned); a file's worth of them at once overloads a 2-core
 * machine until start-up alone outlasts any deadline.
 */
const running = 2;
let active = 0;
const queue: (() => void)[] = [];
async function slot(): Promise<() => void> {
  if (active >= running) await new Promise<void>((resolve) => queue.push(resolve));
  active++;
  return () => {
    active--;
    queue.shift()?.();
  };
}

/**
 * Declares `title` once per shape, as `title [one process]` and `title [workers: 2]`; with `clients`, once per
 * shape and client protocol (`title [workers: 2, h2]`). HTTP/1.1 alone by default: each protocol added costs a
 * whole run of the test, so the routing tests ask for h2.
 */
export function inEachShape(
  title: string,
  impl: (t: ExecutionContext, shape: Shape) => Promise<void>,
  options: { clients?: readonly ClientProtocol[] } = {},
): void {
  const clients = options.clients ?? ["http/1.1"];
  const matrix = shapes.flatMap((shape) =>
    clients.map((client) => (client === "http/1.1" ? shape : { ...shape, name: `${shape.name}, ${client}`, client })),
  );
  for (const shape of matrix) {
    test(`${title} [${shape.name}]`, async (t) => {
      t.timeout(600_000, "waiting for a slot among this file's matrix tests");
      const release = await slot();
      try {
        // From here: up to three processes start; on a busy 2-core machine that alone took a minute.
        t.timeout(240_000, "serve starting and running on a busy machine");
        await impl(t, shape);
      } finally {
        release();
      }
    });
  }
}

const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

export interface Running {
  child: ChildProcess;
  /** The proxy's URL as serve logged it (http:// or https://). */
  proxy: string;
  admin: string;
  stdout: () => string;
  stderr: () => string;
  /** stderr's JSON log lines, parsed. */
  // biome-ignore lint/suspicious/noExplicitAny: test convenience for JSON log lines
  logs: () => Record<string, any>[];
  exit: Promise<number | null>;
}

/**
 * Starts `ringroute serve ARGS` in `shape` on loopback (ephemeral ports unless
 * ARGS or the config say otherwise) with JSON logs, and waits for the two
 * start-up lines that name the bound addresses. Killed when the test ends.
 */
export async function serve(
  t: ExecutionContext,
  shape: Shape,
  args: string[],
  options: { addressFlags?: boolean } = {},
): Promise<Running> {
  // Without the flags (addressFlags: false), the config file says listen, admin and workers itself.
  const flags =
    options.addressFlags === false
      ? []
      : ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", String(shape.workers)];
  const child = spawn(process.execPath, ["--import", "tsx", cli, "serve", ...flags, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RINGROUTE_CONFIG: "" },
  });
  // Should the test process end early (a timeout), serve goes with it; workers follow their primary.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  t.teardown(() => {
    child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  const started = await until(
    () => {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}`);
      const proxy = /proxy listening on (https?:\/\/[^,\s]+)/.exec(stderr)?.[1];
      const admin = /admin on (http:\/\/[\d.:]+):/.exec(stderr)?.[1];
      return proxy && admin ? { proxy, admin } : undefined;
    },
    { what: `serve [${shape.name}] printing its addresses`, timeout: 120_000 },
  ).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`serve did not start: ${error.message}\n${stderr}`);
  });
  const logs = () =>
    stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line));
  return { child, ...started, stdout: () => stdout, stderr: () => stderr, logs, exit };
}
