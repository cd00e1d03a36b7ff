/**
 * In-process etcd cluster members and observers for tests, and sidecar
 * processes (`ringroute member`) to SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Cluster } from "../../src/cluster.ts";
import { EtcdMember, type EtcdMemberOptions } from "../../src/membership/etcd/member.ts";
import { EtcdSource } from "../../src/membership/etcd/source.ts";
import type { RingConfig } from "../../src/ring/ring.ts";
import type { EtcdServer } from "./etcd.ts";

export interface Node {
  source: EtcdSource;
  cluster: Cluster;
  member: EtcdMember;
  stop(): Promise<void>;
}

export interface NodeOptions extends Partial<EtcdMemberOptions> {
  handoffTimeout?: number;
  /** Where this node reaches etcd (a forwarder to cut); default the server itself. */
  endpoint?: string;
}

/** Tracks what a test started, to stop it all in teardown. */
export class Nodes {
  readonly #stops: (() => Promise<void>)[] = [];
  readonly #children: ChildProcess[] = [];

  constructor(
    readonly etcd: EtcdServer,
    readonly cluster: string,
    readonly ring: Partial<RingConfig>,
  ) {}

  get prefix(): string {
    return `/ringroute/${this.cluster}/`;
  }

  /** A member: a Cluster (local = name) on a coordinated source, joined. */
  async member(name: string, options: NodeOptions = {}): Promise<Node> {
    const { handoffTimeout, endpoint, ...rest } = options;
    const source = new EtcdSource({
      endpoints: [endpoint ?? this.etcd.endpoint],
      cluster: this.cluster,
      handoffTimeout,
    });
    const cluster = new Cluster({ source, local: name, ring: this.ring });
    const member = new EtcdMember(source, {
      name,
      url: `http://127.0.0.1:1/${name}`,
      ttl: 10_000,
      // Teardown leaves every member: a test's end need not wait 30 s for a hand-over nobody can take.
      leaveTimeout: 3000,
      ring: this.ring,
      ...rest,
    });
    await cluster.start();
    await member.join();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await member.leave();
      await cluster.stop();
    };
    this.#stops.push(stop);
    return { source, cluster, member, stop };
  }

  /** An observer: a Cluster on a coordinated source (what a proxy runs). */
  async observer(options: { handoffWait?: number } = {}): Promise<Cluster> {
    const source = new EtcdSource({ endpoints: [this.etcd.endpoint], cluster: this.cluster, ...options });
    const cluster = new Cluster({ source, ring: this.ring });
    await cluster.start();
    this.#stops.push(() => cluster.stop());
    return cluster;
  }

  /**
   * `ringroute member` as a child process (a sidecar), to SIGKILL. Runs the
   * built CLI (`npm test` builds first): starting from source through tsx
   * takes many seconds on a loaded machine.
   */
  sidecar(name: string, url: string, extra: string[] = []): ChildProcess {
    const cli = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
    const args = [
      cli,
      "member",
      `--etcd=${this.etcd.endpoint}`,
      `--cluster=${this.cluster}`,
      `--name=${name}`,
      `--url=${url}`,
      "--ttl=2s",
      ...(this.ring.partitions ? [`--partitions=${this.ring.partitions}`] : []),
      ...(this.ring.replicas ? [`--replicas=${this.ring.replicas}`] : []),
      ...extra,
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.resume();
    this.#children.push(child);
    return child;
  }

  async stopAll(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGKILL");
        await exited;
      }
    }
    await Promise.all(this.#stops.map((stop) => stop()));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
