/**
 * A real etcd on loopback for tests: ephemeral client and peer ports, a
 * temporary data dir removed on stop. Needs `etcd` and `etcdctl` (Debian
 * `etcd-server`, `etcd-client`); if they are missing, starting throws and the
 * test fails rather than skips.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./serf.ts";
import { until } from "./until.ts";

const run = promisify(execFile);

export class EtcdServer {
  process: ChildProcess | undefined;
  readonly output: string[] = [];

  private constructor(
    readonly dir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  /** Starts etcd and waits until it answers. */
  static async start(): Promise<EtcdServer> {
    const dir = await mkdtemp(join(tmpdir(), "ringroute-etcd-"));
    const server = new EtcdServer(dir, await freePort(), await freePort());
    await server.#spawn();
    return server;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** `etcdctl` against this server; resolves with its stdout. */
  async ctl(...args: string[]): Promise<string> {
    const { stdout } = await run("etcdctl", [`--endpoints=${this.endpoint}`, ...args], {
      env: { ...process.env, ETCDCTL_API: "3" },
      timeout: 15_000,
    });
    return stdout;
  }

  /** A lease of `ttl` seconds; returns its id (hex) for `put --lease`. */
  async grant(ttl: number): Promise<string> {
    const out = await this.ctl("lease", "grant", String(ttl));
    const match = /lease ([0-9a-f]+) granted/.exec(out);
    if (!match) throw new Error(`unexpected etcdctl lease grant output: ${out}`);
    return match[1] as string;
  }

  /** SIGKILLs etcd (a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }

  /** Starts etcd again on the same ports and data. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  /** Kills etcd and removes its data dir. */
  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  async #spawn(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      "etcd",
      [
        "--name=test",
        `--data-dir=${join(this.dir, "data")}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        "--log-level=warn",
        "--logger=zap",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.process = child;
    child.stdout?.on("data", (d) => this.output.push(String(d)));
    child.stderr?.on("data", (d) => this.output.push(String(d)));
    const failed = new Promise<never>((_, reject) => {
      child.once("error", (error) =>
        reject(new Error(`cannot run etcd (Debian package "etcd-server"): ${error.message}`)),
      );
      child.once("exit", (code) => reject(new Error(`etcd exited (${code}): ${this.output.join("").slice(-2000)}`)));
    });
    failed.catch(() => {});
    await Promise.race([
      until(() => this.ctl("endpoint", "health").then(() => true), {
        what: "etcd answering",
        timeout: 30_000,
        interval: 100,
      }),
      failed,
    ]);
  }
}
