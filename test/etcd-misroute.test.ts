/**
 * The hand-off guarantee through a real proxy on a real etcd, event by
 * event: members whose releases and acquires take time, steady traffic over
 * many keys, and every member checking each request that reaches it against
 * what it holds at that moment (`member.holds`, or for a sidecar the
 * partitions its hooks handed it). A request for a partition the member does
 * not hold is refused (421) and counted. Must be 0, or exactly the
 * documented exception, told apart by the version the proxy routed by (the
 * `x-ringroute-version` header), not by timing. TTLs are 2 s; every wait has
 * a deadline.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import type { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import { createProxy } from "../src/proxy/server.ts";
import { Ring } from "../src/ring/ring.ts";
import { send } from "./helpers/backends.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { type Node, Nodes, sleep } from "./helpers/etcd-nodes.ts";
import { Forwarder } from "./helpers/forwarder.ts";
import { until } from "./helpers/until.ts";

let etcd: EtcdServer;
test.before(async () => {
  etcd = await EtcdServer.start();
});
test.after.always(() => etcd?.stop());

const ring = { partitions: 16, replicas: 1 };
let count = 0;

interface Misroute {
  member: string;
  partition: number;
  /** The version of the routing table the proxy sent it by. */
  version: number;
  at: number;
}

/** A release that began: for which version, and when. */
interface Release {
  version: number;
  at: number;
}

/** A member's HTTP side: serves a request only for a partition `holds` says it has; counts the others. */
class Backend {
  readonly server: Server;
  url = "";
  /** Partitions handed over by the sidecar's hooks (a sidecar's member; in-process members use `member.holds`). */
  readonly hooked = new Set<number>();
  /** When the first release hook arrived. */
  releaseCalled: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly scene: Scene,
    holds: ((p: number, r: number) => boolean) | undefined,
    hookDelay = { release: 0, acquire: 0 },
  ) {
    this.server = createServer(async (req, res) => {
      if (req.method === "POST" && req.url?.startsWith("/_ring/")) {
        const body = JSON.parse(await text(req)) as { partition: number; rank: number; version: number };
        const slot = body.partition * 256 + body.rank;
        if (req.url === "/_ring/release") {
          this.hooked.delete(slot); // not served from here on, while it is saved
          scene.releaseBegan(name, body.partition, body.version);
          this.releaseCalled?.();
          await sleep(hookDelay.release);
        } else {
          await sleep(hookDelay.acquire);
          this.hooked.add(slot);
        }
        res.writeHead(204).end();
        return;
      }
      const p = Number(req.headers["x-ringroute-partition"]);
      const r = Number(req.headers["x-ringroute-rank"]);
      const held = holds ? holds(p, r) : this.hooked.has(p * 256 + r);
      if (!held) {
        const version = Number(req.headers["x-ringroute-version"]);
        scene.misrouted.push({ member: name, partition: p, version, at: performance.now() });
        res.writeHead(421).end();
        return;
      }
      res.writeHead(200).end(name);
    });
  }

  async listen(): Promise<this> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Gone at once, as with its process: open connections reset, the port closed. */
  kill(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

function text(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** etcd, a proxy watching it, members, and steady traffic through the proxy. */
class Scene {
  readonly misrouted: Misroute[] = [];
  /** Each member's releases of each partition, in the order they began. */
  readonly #releases = new Map<string, Release[]>();
  readonly statuses = new Map<number, number>();
  readonly n: Nodes;
  proxy!: Cluster;
  port = 0;
  #sending = false;
  #traffic: Promise<void> | undefined;

  constructor(t: { teardown(fn: () => Promise<void> | void): void }) {
    this.n = new Nodes(etcd, `m${++count}`, ring);
    t.teardown(async () => {
      this.#sending = false;
      await this.#traffic;
      await this.n.stopAll();
    });
    this.teardown = t.teardown.bind(t);
  }

  readonly teardown: (fn: () => Promise<void> | void) => void;

  releaseBegan(member: string, partition: number, version: number): void {
    const key = `${member}/${partition}`;
    const releases = this.#releases.get(key) ?? [];
    releases.push({ version, at: performance.now() });
    this.#releases.set(key, releases);
  }

  /**
   * The documented exception: a request the proxy routed to the old owner
   * before it saw that owner take the version up (its document is written
   * before the release begins) arrives after the release began. Such a
   * request was routed by a table of the release's version (the owner still
   * "moving" there) or an earlier one, so it is told apart by version: the
   * member's last release of the partition before the request arrived is
   * for the request's version or a later one. A request routed by a table
   * newer than that release (after a flap, by the version that gave the
   * partition back) reached a member that was not yet ready: not the
   * exception, however soon after the release. `worst` is how long after its
   * release began the latest of the late ones arrived (reported, not a
   * bound: a loaded machine delays the proxy's watch).
   */
  late(): { late: Misroute[]; other: Misroute[]; worst: number } {
    const late: Misroute[] = [];
    const other: Misroute[] = [];
    let worst = 0;
    for (const x of this.misrouted) {
      const releases = this.#releases.get(`${x.member}/${x.partition}`) ?? [];
      const began = releases.filter((r) => r.at <= x.at).at(-1);
      if (began !== undefined && Number.isInteger(x.version) && x.version <= began.version) {
        late.push(x);
        worst = Math.max(worst, x.at - began.at);
      } else other.push(x);
    }
    return { late, other, worst };
  }

  async startProxy(): Promise<void> {
    // Longer than any hand-off here: a request waits for its partition rather than getting 503.
    this.proxy = await this.n.observer({ handoffWait: 15_000 });
    const config = defaultConfig();
    const proxy = createProxy({ cluster: this.proxy, config: { key: config.key, proxy: config.proxy } });
    this.port = (await proxy.listen(0, "127.0.0.1")).port;
    this.teardown(() => proxy.close(1000));
  }

  /** An in-process member whose backend serves what `member.holds` says. */
  async member(
    name: string,
    options: {
      release?: number;
      acquire?: number;
      endpoint?: string;
      onFenced?: () => void;
      handoffTimeout?: number;
      /** Releases never settle (a flush that hangs): given up after `handoffTimeout`. */
      stuck?: boolean;
    } = {},
  ): Promise<Node> {
    let node: Node | undefined;
    const backend = await new Backend(name, this, (p, r) => node?.member.holds(p, r) === true).listen();
    this.teardown(() => backend.kill());
    const wait = (ms: number | undefined, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms ?? 0);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    node = await this.n.member(name, {
      url: backend.url,
      ttl: 2000,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.onFenced === undefined ? {} : { onFenced: options.onFenced }),
      ...(options.handoffTimeout === undefined ? {} : { handoffTimeout: options.handoffTimeout }),
      handoff: {
        release: (p, _to, _r, step) => {
          this.releaseBegan(name, p, step.version);
          return options.stuck ? new Promise<void>(() => {}) : wait(options.release, step.signal);
        },
        acquire: (_p, _from, _r, step) => wait(options.acquire, step.signal),
      },
    });
    return node;
  }

  /** A `ringroute member` sidecar process whose hooks reach a backend here; SIGKILL it to crash the member. */
  async sidecar(
    name: string,
    delays: { release: number; acquire: number },
  ): Promise<{ backend: Backend; child: ChildProcess; kill(): Promise<void> }> {
    const backend = await new Backend(name, this, undefined, delays).listen();
    this.teardown(() => backend.kill());
    const child = this.n.sidecar(name, backend.url, [
      `--release-hook=${backend.url}/_ring/release`,
      `--acquire-hook=${backend.url}/_ring/acquire`,
    ]);
    const kill = async () => {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      backend.kill();
      await exited;
    };
    return { backend, child, kill };
  }

  /** Stable on `members`: every proxy-side slot ready at its owner, no hand-off in flight. */
  async stable(members: string[], what: string, timeout = 60_000): Promise<void> {
    const sorted = [...members].sort().join();
    await until(
      () =>
        this.proxy.version !== undefined &&
        this.proxy.stableVersion === this.proxy.version &&
        this.proxy.ring.members.join() === sorted &&
        this.proxy.routing.counts.ready === ring.partitions * ring.replicas,
      { what, timeout },
    );
  }

  startTraffic(): void {
    this.#sending = true;
    const keys = Array.from({ length: 200 }, (_, i) => `/k${i}`);
    const worker = async () => {
      while (this.#sending) {
        const key = keys[Math.floor(Math.random() * keys.length)] as string;
        const status = await send(`http://127.0.0.1:${this.port}`, key).then(
          (r) => r.status,
          () => 0,
        );
        this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      }
    };
    this.#traffic = Promise.all(Array.from({ length: 4 }, worker)).then(() => {});
  }

  async stopTraffic(): Promise<string> {
    this.#sending = false;
    await this.#traffic;
    return [...this.statuses].map(([s, c]) => `${s === 0 ? "error" : s}: ${c}`).join(", ");
  }
}

test("SIGKILL of the leader in the middle of its releases: no request reaches a member that does not hold the partition", async (t) => {
  t.timeout(120_000);
  const s = new Scene(t);
  await s.startProxy();
  const a = await s.sidecar("a", { release: 1500, acquire: 300 });
  await until(() => s.proxy.coordination?.version !== undefined, { what: "a leading, a first version" });
  const b = await s.sidecar("b", { release: 1500, acquire: 300 });
  await s.stable(["a", "b"], "a and b stable");
  s.startTraffic();
  const releasing = new Promise<void>((resolve) => {
    a.backend.releaseCalled = resolve;
  });
  const c = await s.sidecar("c", { release: 1500, acquire: 300 });
  await until(() => releasing.then(() => true), { what: "a releasing a partition to c" });
  await a.kill();
  await s.stable(["b", "c"], "b and c stable without a (a new leader)");
  const summary = await s.stopTraffic();
  const { late, other, worst } = s.late();
  t.deepEqual(other, [], "no request reached a member not holding its partition, but for the exception");
  t.true((s.statuses.get(200) ?? 0) > 0);
  t.log(`${late.length} requests reached an old owner ≤ ${worst.toFixed(0)} ms into its release; answers: ${summary}`);
  void b;
  void c;
});

test("SIGKILL and restart under the same name within the TTL: the new process gets requests only for what it acquired again", async (t) => {
  t.timeout(120_000);
  const s = new Scene(t);
  await s.startProxy();
  await s.sidecar("a", { release: 500, acquire: 300 });
  await until(() => s.proxy.coordination?.version !== undefined, { what: "a first version" });
  const b = await s.sidecar("b", { release: 500, acquire: 300 });
  await s.stable(["a", "b"], "a and b stable");
  s.startTraffic();
  await b.kill();
  const again = await s.sidecar("b", { release: 500, acquire: 300 });
  const mine = Ring.build(["a", "b"], ring);
  const owned = [...Array(ring.partitions).keys()].filter((p) => mine.owner(p, 0) === "b");
  await until(() => owned.every((p) => again.backend.hooked.has(p * 256)), {
    what: "the new b acquired its partitions again",
    timeout: 60_000,
  });
  await s.stable(["a", "b"], "a and b stable again");
  const summary = await s.stopTraffic();
  const { late, other, worst } = s.late();
  t.deepEqual(other, [], "no request reached a member not holding its partition, but for the exception");
  t.log(`${late.length} requests reached an old owner ≤ ${worst.toFixed(0)} ms into its release; answers: ${summary}`);
});

test("a member not ready, then ready again 100 ms later: no request reaches a member not holding the partition", async (t) => {
  t.timeout(120_000);
  const s = new Scene(t);
  await s.startProxy();
  const a = await s.member("a", { release: 400, acquire: 200 });
  const b = await s.member("b", { release: 400, acquire: 200 });
  await s.stable(["a", "b"], "a and b stable");
  s.startTraffic();
  for (let flap = 0; flap < 3; flap++) {
    await b.member.setReady(false);
    await sleep(100);
    await b.member.setReady(true);
    await s.stable(["a", "b"], `a and b stable after flap ${flap + 1}`);
  }
  const summary = await s.stopTraffic();
  const { late, other, worst } = s.late();
  t.deepEqual(other, [], "no request reached a member not holding its partition, but for the exception");
  t.log(`${late.length} requests reached an old owner ≤ ${worst.toFixed(0)} ms into its release; answers: ${summary}`);
  void a;
});

test("a member cut off from etcd: only requests the proxy sent between its fencing and its lease's expiry reach it, and it refuses them", async (t) => {
  t.timeout(120_000);
  const s = new Scene(t);
  await s.startProxy();
  const forwarder = await Forwarder.start({ host: "127.0.0.1", port: etcd.clientPort });
  t.teardown(() => forwarder.close());
  await s.member("b", { release: 300, acquire: 200 });
  await s.stable(["b"], "b alone");
  let fencedAt = 0;
  await s.member("a", {
    release: 300,
    acquire: 200,
    endpoint: forwarder.endpoint,
    onFenced: () => {
      fencedAt ||= performance.now();
    },
  });
  await s.stable(["a", "b"], "a and b stable");
  s.startTraffic();
  const cutAt = performance.now();
  forwarder.cut();
  await s.stable(["b"], "b alone, holding a's partitions");
  const goneAt = performance.now();
  forwarder.restore();
  await s.stable(["a", "b"], "a back, stable");
  const summary = await s.stopTraffic();
  t.true(fencedAt > cutAt, "a fenced itself");
  // The exceptions: a fences itself a little before etcd expires its lease, and the proxy routes to it until
  // then; and requests that reach an old owner just after its release began.
  const { late, other, worst } = s.late();
  const fenced = other.filter((x) => x.member === "a" && x.at >= fencedAt && x.at <= goneAt);
  t.deepEqual(
    other.filter((x) => !fenced.includes(x)),
    [],
    "no other request reached a member not holding its partition",
  );
  const window = fenced.length === 0 ? 0 : Math.max(...fenced.map((x) => x.at)) - fencedAt;
  t.log(
    `cut → fenced ${(fencedAt - cutAt).toFixed(0)} ms; ${fenced.length} requests reached fenced a (refused), within ${window.toFixed(0)} ms of its fencing; ${late.length} reached an old owner ≤ ${worst.toFixed(0)} ms into its release; answers: ${summary}`,
  );
});

test("a release that never settles: given up after handoffTimeout, the new owner takes over, and no request reaches a member not holding the partition", async (t) => {
  t.timeout(120_000);
  const s = new Scene(t);
  await s.startProxy();
  const a = await s.member("a", { stuck: true, handoffTimeout: 1500 });
  await s.stable(["a"], "a alone");
  s.startTraffic();
  const b = await s.member("b", { acquire: 200 });
  await s.stable(["a", "b"], "a and b stable despite a's hung releases");
  await s.member("c", { acquire: 200 });
  await s.stable(["a", "b", "c"], "a later version stable too");
  const summary = await s.stopTraffic();
  t.true(a.member.handoffFailures > 0, "a gave its hung releases up");
  t.is(b.member.handoffTimeouts, 0, "b acquired on a's release marks");
  const { late, other, worst } = s.late();
  t.deepEqual(other, [], "no request reached a member not holding its partition, but for the exception");
  t.log(`${late.length} requests reached an old owner ≤ ${worst.toFixed(0)} ms into its release; answers: ${summary}`);
});
