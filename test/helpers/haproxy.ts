/**
 * A real HAProxy 2.6 on loopback in front of recording backends: the
 * independent oracle of the differential test. The test writes its config
 * to a temporary directory, starts it in the foreground (`-db`) and stops it
 * with a deadline. CI installs Debian's `haproxy` package; a missing binary
 * fails (the spawn errors), it never skips.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawClient, RecordingBackend } from "./raw.ts";
import { until, within } from "./until.ts";

/** Where Debian's package installs it. */
export const haproxyPath = "/usr/sbin/haproxy";

export interface HaproxyOptions {
  /** `timeout server`, in milliseconds: how long it waits for a member's response (and between its bytes). */
  serverTimeout: number;
  /** `timeout client`, in milliseconds. */
  clientTimeout: number;
}

export interface HaproxyHarness {
  backends: RecordingBackend[];
  backend(name: string): RecordingBackend;
  port: number;
  /** What HAProxy wrote to stderr (its alerts and warnings). */
  readonly output: string;
  connect(): Promise<RawClient>;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/**
 * The config: one frontend, `balance uri` with consistent hashing over the
 * named servers, keep-alive both ways with server connections shared between
 * clients (`http-reuse always`, as ringroute's pools are), and dot-segments
 * removed before the URI is hashed, so the member gets and the balancer hashes
 * one form (`normalize-uri` is still marked experimental in 2.6).
 */
export function haproxyConfig(port: number, servers: { name: string; port: number }[], o: HaproxyOptions): string {
  return [
    "global",
    "    nbthread 1",
    "    expose-experimental-directives",
    "    log stderr format raw local0 info",
    "defaults",
    "    mode http",
    "    log global",
    "    option httplog",
    "    timeout connect 2s",
    `    timeout client ${o.clientTimeout}ms`,
    `    timeout server ${o.serverTimeout}ms`,
    "    timeout http-request 10s",
    "    timeout http-keep-alive 10s",
    "    option http-keep-alive",
    "    http-reuse always",
    "frontend oracle",
    `    bind 127.0.0.1:${port}`,
    "    http-request normalize-uri path-strip-dot",
    "    http-request normalize-uri path-strip-dotdot",
    "    default_backend members",
    "backend members",
    "    balance uri",
    "    hash-type consistent",
    ...servers.map((s) => `    server ${s.name} 127.0.0.1:${s.port}`),
    "",
  ].join("\n");
}

/** Recording backends `names` behind a freshly started HAProxy. */
export async function startHaproxy(names: string[], options: HaproxyOptions): Promise<HaproxyHarness> {
  const backends = await Promise.all(names.map((name) => RecordingBackend.start(name)));
  const dir = await mkdtemp(join(tmpdir(), "ringroute-haproxy-"));
  const port = await freePort();
  const file = join(dir, "haproxy.cfg");
  await writeFile(file, haproxyConfig(port, backends, options));
  const child: ChildProcess = spawn(haproxyPath, ["-db", "-f", file], { stdio: ["ignore", "ignore", "pipe"] });
  let output = "";
  let exited: string | undefined;
  child.stderr?.setEncoding("utf8").on("data", (text: string) => (output += text));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (error) => reject(new Error(`${haproxyPath} could not start (CI installs haproxy): ${error}`)));
  });
  child.once("exit", (code, signal) => (exited = `exited with ${code ?? signal}`));
  const clients: RawClient[] = [];
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = once(child, "exit");
      child.kill("SIGTERM");
      await within(gone, { what: "HAProxy to exit after SIGTERM", timeout: 10_000 }).catch(async () => {
        child.kill("SIGKILL");
        await within(once(child, "exit"), { what: "HAProxy to exit after SIGKILL", timeout: 10_000 });
      });
    }
  };
  try {
    await within(spawned, { what: "HAProxy to start", timeout: 10_000 });
    await until(
      async () => {
        if (exited !== undefined) throw new Error(`HAProxy ${exited}: ${output}`);
        const probe = await RawClient.connect(port).catch(() => undefined);
        probe?.close();
        return probe !== undefined;
      },
      { what: `HAProxy to listen on 127.0.0.1:${port}`, timeout: 20_000, interval: 50 },
    );
  } catch (error) {
    await stop();
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    backends,
    backend(name) {
      const found = backends.find((b) => b.name === name);
      if (found === undefined) throw new Error(`no backend named ${name}`);
      return found;
    },
    port,
    get output() {
      return output;
    },
    async connect() {
      if (exited !== undefined) throw new Error(`HAProxy ${exited}: ${output}`);
      const client = await RawClient.connect(port);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await stop();
      await Promise.all(backends.map((b) => b.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
