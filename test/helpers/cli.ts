import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `ringroute ARGS` from source, feeding `input` on standard input, with
 * `env` added to an environment cleared of RINGROUTE_* variables.
 */
export async function ringroute(args: string[], input = "", env: Record<string, string> = {}): Promise<Run> {
  // A few processes at a time: dozens of Node start-ups at once on a busy machine finish none in time.
  while (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await run(args, input, env);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

const limit = Math.max(2, availableParallelism());
let running = 0;
const waiting: (() => void)[] = [];

function run(args: string[], input: string, env: Record<string, string>): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("RINGROUTE_")));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", cli, ...args], {
      stdio: "pipe",
      env: { ...clean, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
