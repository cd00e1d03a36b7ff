/**
 * Real Serf agents on loopback for tests. Needs the `serf` program (Debian
 * package `serf`); if it is missing, starting an agent throws, and the test
 * fails rather than skips.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { until } from "./until.ts";

const run = promisify(execFile);

export interface SerfAgent {
  name: string;
  /** Gossip port (TCP and UDP) on 127.0.0.1. */
  bindPort: number;
  /** RPC address, "127.0.0.1:port". */
  rpc: string;
  tags: Record<string, string>;
  process: ChildProcess;
  /** The agent's output, for failure messages. */
  output: string[];
}

export interface AgentOptions {
  tags?: Record<string, string>;
  /** An `rpc_auth` key, set through a config file (the only way Serf takes it). */
  authKey?: string;
  /** Directory for the auth config file. */
  dir?: string;
}

/** Starts, joins, re-tags, stops and kills agents; `stopAll()` in test.after.always. */
export class SerfAgents {
  readonly agents = new Map<string, SerfAgent>();

  /** Starts an agent and waits until its RPC answers. Reuses `ports` (for a restart) when given. */
  async start(
    name: string,
    options: AgentOptions = {},
    ports?: { bindPort: number; rpcPort: number },
  ): Promise<SerfAgent> {
    const bindPort = ports?.bindPort ?? (await freePort());
    const rpcPort = ports?.rpcPort ?? (await freePort());
    const tags = options.tags ?? {};
    const args = [
      "agent",
      `-node=${name}`,
      `-bind=127.0.0.1:${bindPort}`,
      `-rpc-addr=127.0.0.1:${rpcPort}`,
      "-log-level=info",
      ...Object.entries(tags).flatMap(([k, v]) => ["-tag", `${k}=${v}`]),
    ];
    if (options.authKey !== undefined) {
      const file = join(options.dir ?? ".", `serf-${name}.json`);
      await writeFile(file, JSON.stringify({ rpc_auth: options.authKey }));
      args.push(`-config-file=${file}`);
    }
    const child = spawn("serf", args, { stdio: ["ignore", "pipe", "pipe"] });
    const agent: SerfAgent = { name, bindPort, rpc: `127.0.0.1:${rpcPort}`, tags, process: child, output: [] };
    child.stdout?.on("data", (d) => agent.output.push(String(d)));
    child.stderr?.on("data", (d) => agent.output.push(String(d)));
    const failed = new Promise<never>((_, reject) => {
      child.once("error", (error) =>
        reject(new Error(`cannot run serf (Debian package "serf"): ${(error as Error).message}`)),
      );
      child.once("exit", (code) => reject(new Error(`serf agent ${name} exited (${code}): ${agent.output.join("")}`)));
    });
    failed.catch(() => {});
    this.agents.set(name, agent);
    await Promise.race([waitForPort(rpcPort, 30_000), failed]);
    return agent;
  }

  get(name: string): SerfAgent {
    const agent = this.agents.get(name);
    if (!agent) throw new Error(`no agent ${name}`);
    return agent;
  }

  /** `serf join`: `name` joins the cluster `other` is in. */
  async join(name: string, other: string): Promise<void> {
    await this.#serf(name, "join", `127.0.0.1:${this.get(other).bindPort}`);
  }

  /** `serf tags -set k=v` / `-delete k`. */
  async tags(name: string, set: Record<string, string>, remove: string[] = []): Promise<void> {
    const args = [
      ...Object.entries(set).flatMap(([k, v]) => ["-set", `${k}=${v}`]),
      ...remove.flatMap((k) => ["-delete", k]),
    ];
    await this.#serf(name, "tags", ...args);
  }

  /** `serf leave`: a graceful leave; resolves when the agent has exited. */
  async leave(name: string): Promise<void> {
    const agent = this.get(name);
    const exited = once(agent.process, "exit");
    await this.#serf(name, "leave");
    await exited;
  }

  /** Sends a signal and waits for the agent to exit (SIGKILL: a crash; SIGTERM: a shutdown without leave). */
  async kill(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const agent = this.get(name);
    if (agent.process.exitCode !== null || agent.process.signalCode !== null) return;
    const exited = once(agent.process, "exit");
    agent.process.kill(signal);
    await exited;
  }

  /** Stops an agent (SIGTERM) and starts it again on the same ports with the same tags. */
  async restart(name: string, options: AgentOptions = {}): Promise<SerfAgent> {
    const agent = this.get(name);
    await this.kill(name, "SIGTERM");
    return this.start(
      name,
      { tags: agent.tags, ...options },
      { bindPort: agent.bindPort, rpcPort: Number(agent.rpc.split(":")[1]) },
    );
  }

  /** Kills every agent still running. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((name) => this.kill(name)));
  }

  async #serf(name: string, command: string, ...args: string[]): Promise<void> {
    await run("serf", [command, `-rpc-addr=${this.get(name).rpc}`, ...args], { timeout: 15_000 });
  }
}

/** A port free for both TCP and UDP on 127.0.0.1 (Serf gossips over both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const udp = createSocket("udp4");
    const free = await new Promise<boolean>((resolve) => {
      udp.once("error", () => resolve(false));
      udp.bind(port, "127.0.0.1", () => resolve(true));
    });
    udp.close();
    server.close();
    await once(server, "close");
    if (free) return port;
  }
}

async function waitForPort(port: number, timeout: number): Promise<void> {
  const connects = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
  await until(connects, { what: `the serf agent's RPC port 127.0.0.1:${port}`, timeout, interval: 25 });
}
