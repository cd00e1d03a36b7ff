import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { until } from "./until.ts";

const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

export interface Serving {
  child: ChildProcess;
  /** http://127.0.0.1:PORT of the proxy. */
  proxy: string;
  /** http://127.0.0.1:PORT of the admin server. */
  admin: string;
  output: () => string;
  exit: Promise<number | null>;
  /** SIGTERM, then waits for the exit. */
  stop: () => Promise<void>;
}

/** Starts `ringroute serve ARGS` from source on ephemeral loopback ports and waits for both addresses. */
export async function startServe(args: string[]): Promise<Serving> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", cli, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RINGROUTE_CONFIG: "" } },
  );
  // Should the test process end early, the server goes with it (workers follow on disconnect).
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  // Generous: starting the CLI under tsx on a loaded 2-core machine was measured at up to 60 s.
  const started = await until(
    () => {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}`);
      const proxy = /proxy listening on (http:\/\/[^,\s]+)/.exec(output)?.[1];
      const admin = /admin on (http:\/\/[\d.:]+):/.exec(output)?.[1];
      return proxy && admin ? { proxy, admin } : undefined;
    },
    { what: "serve's proxy listening and admin lines", timeout: 120_000 },
  ).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`serve did not start: ${error.message}\n${output}`);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exit;
  };
  return { child, ...started, output: () => output, exit, stop };
}
