/**
 * The member's side of hand-offs against a real etcd: fencing when cut off,
 * a stuck release that does not freeze stability, the leave sequence, and
 * the sidecar's hooks (and a SIGKILL + restart under the same name) against
 * a real HTTP backend. TTLs are short; every wait has a deadline.
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { startCacheService } from "../examples/etcd-cache/service.ts";
import type { HandoffHandlers } from "../src/handoff/runner.ts";
import type { HookCall } from "../src/membership/etcd/hooks.ts";
import { Ring } from "../src/ring/ring.ts";
import { send } from "./helpers/backends.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { type Node, Nodes, sleep } from "./helpers/etcd-nodes.ts";
import { Forwarder } from "./helpers/forwarder.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { until } from "./helpers/until.ts";

let etcd: EtcdServer;
test.before(async () => {
  etcd = await EtcdServer.start();
});
test.after.always(() => etcd?.stop());

const ring = { partitions: 16, replicas: 1 };
let count = 0;
function nodes(t: { teardown(fn: () => Promise<void>): void }): Nodes {
  const n = new Nodes(etcd, `f${++count}`, ring);
  t.teardown(() => n.stopAll());
  return n;
}

/** Partitions `member` owns in a ring of `members`. */
function owned(members: string[], member: string): number[] {
  const built = Ring.build(members, ring);
  return [...Array(ring.partitions).keys()].filter((p) => built.owner(p, 0) === member);
}

interface Step {
  what: "acquire" | "release";
  member: string;
  partition: number;
  other: string | null;
  version: number;
  at: number;
}

/** Handlers that record every step as it starts. */
function recording(log: Step[], member: string, extra: Partial<HandoffHandlers> = {}): HandoffHandlers {
  return {
    acquire: (partition, from, rank, step) => {
      log.push({ what: "acquire", member, partition, other: from, version: step.version, at: performance.now() });
      return extra.acquire?.(partition, from, rank, step);
    },
    release: (partition, to, rank, step) => {
      log.push({ what: "release", member, partition, other: to, version: step.version, at: performance.now() });
      return extra.release?.(partition, to, rank, step);
    },
  };
}

/** Stable on `members`, each node holding exactly what it owns. */
async function stableOn(all: Node[], members: string[], what: string, timeout = 30_000): Promise<number> {
  return until(
    () => {
      const cluster = all[0]?.cluster;
      const version = cluster?.version;
      const ok =
        version !== undefined &&
        cluster?.stableVersion === version &&
        cluster.ring.members.join() === [...members].sort().join() &&
        all.every(
          (node) =>
            node.member.version === version &&
            node.member.settled &&
            [...node.member.held].sort((x, y) => x - y).join() ===
              (members.includes(node.member.name) ? owned(members, node.member.name).map((p) => p * 256) : []).join(),
        );
      return ok ? version : undefined;
    },
    { what, timeout },
  );
}

test.serial(
  "a member cut off from etcd fences itself before anyone acquires its partitions, and gets them back only through hand-offs",
  async (t) => {
    t.timeout(120_000, "a TTL of cut-off, then grpc reconnect backoff on a loaded machine");
    const n = nodes(t);
    const forwarder = await Forwarder.start({ host: "127.0.0.1", port: etcd.clientPort });
    t.teardown(() => forwarder.close());
    const log: Step[] = [];
    const b = await n.member("b", { ttl: 2000, handoff: recording(log, "b") });
    await stableOn([b], ["b"], "b alone");
    let fencedAt: number | undefined;
    const a = await n.member("a", {
      ttl: 2000,
      endpoint: forwarder.endpoint,
      handoff: recording(log, "a"),
      onFenced: () => {
        fencedAt ??= performance.now();
      },
    });
    await stableOn([a, b], ["a", "b"], "a and b stable");
    const mine = owned(["a", "b"], "a");
    t.true(mine.length > 0);
    t.true(
      mine.every((p) => a.member.holds(p, 0)),
      "a holds its partitions",
    );

    const cutAt = performance.now();
    forwarder.cut();
    await until(() => fencedAt, { what: "a fenced after a lease TTL without etcd" });
    t.is(a.member.held.size, 0, "a holds nothing once fenced");
    t.false(
      mine.some((p) => a.member.holds(p, 0)),
      "holds() answers false for every partition",
    );
    t.is(a.member.fencings, 1);
    await stableOn([b], ["b"], "b alone again, holding a's partitions");
    const takeovers = log.filter((x) => x.member === "b" && x.what === "acquire" && x.at > cutAt);
    t.deepEqual(
      takeovers.map((x) => x.partition).sort((x, y) => x - y),
      mine,
    );
    const fenced = fencedAt as number;
    for (const x of takeovers) t.true(x.at > fenced, `b acquired ${x.partition} only after a had fenced itself`);
    t.log(
      `cut → a fenced ${(fenced - cutAt).toFixed(0)} ms; → b's first take-over ${(Math.min(...takeovers.map((x) => x.at)) - cutAt).toFixed(0)} ms (TTL 2 s)`,
    );

    const restoredAt = performance.now();
    forwarder.restore();
    await stableOn([a, b], ["a", "b"], "a back in, stable", 90_000);
    const back = log.filter((x) => x.member === "a" && x.what === "acquire" && x.at > restoredAt);
    t.deepEqual(
      back.map((x) => x.partition).sort((x, y) => x - y),
      mine,
      "a acquired its partitions again",
    );
    for (const x of back) {
      t.is(x.other, "b", "from b, which held them");
      const released = log.find(
        (y) => y.member === "b" && y.what === "release" && y.partition === x.partition && y.at > restoredAt,
      );
      t.true(released !== undefined && released.at <= x.at, `b released ${x.partition} before a acquired it`);
    }
    t.is(b.member.handoffTimeouts + a.member.handoffTimeouts, 0, "nothing acquired without a release or a fencing");
  },
);

test("a release that never settles is given up after handoffTimeout: the new owner acquires and later versions become stable", async (t) => {
  const n = nodes(t);
  const log: Step[] = [];
  const signals: AbortSignal[] = [];
  const a = await n.member("a", {
    handoffTimeout: 1500,
    handoff: recording(log, "a", {
      release: (_p, _to, _rank, step) => {
        signals.push(step.signal);
        return new Promise(() => {}); // a flush that hangs
      },
    }),
  });
  await stableOn([a], ["a"], "a alone");
  const b = await n.member("b", { handoff: recording(log, "b") });
  const version = await stableOn([a, b], ["a", "b"], "a and b stable despite a's hung releases");
  const moved = owned(["a", "b"], "b");
  t.is(signals.length, moved.length);
  t.true(
    signals.every((s) => s.aborted && s.reason === "timeout"),
    "every hung release's signal fired",
  );
  t.is(a.member.handoffFailures, moved.length, "each given-up release counted");
  t.is(b.member.handoffTimeouts, 0, "b acquired on a's release marks, never without them");
  for (const x of log.filter((y) => y.member === "b" && y.what === "acquire" && y.version === version)) {
    t.is(x.other, "a");
  }
  const c = await n.member("c");
  await stableOn([a, b, c], ["a", "b", "c"], "a later version stable too");
});

test("leave drains, waits until the new owner has every partition ready, then revokes; leaveTimeout bounds the wait", async (t) => {
  const n = nodes(t);
  const acquiredAt = new Map<number, number>();
  const a = await n.member("a");
  await stableOn([a], ["a"], "a alone");
  const b = await n.member("b", {
    handoff: {
      acquire: async (partition) => {
        await sleep(200); // loading it
        acquiredAt.set(partition, performance.now());
      },
    },
  });
  await stableOn([a, b], ["a", "b"], "a and b stable");
  const mine = owned(["a", "b"], "a");
  acquiredAt.clear();
  const observer = await n.observer();
  let sawDrained = false;
  const watching = setInterval(() => {
    if (observer.member("a")?.state === "failed") sawDrained = true;
  }, 5);
  t.teardown(() => clearInterval(watching));
  await a.member.leave();
  const leftAt = performance.now();
  t.deepEqual(
    [...acquiredAt.keys()].sort((x, y) => x - y),
    mine,
    "b acquired every partition a had",
  );
  t.true(
    [...acquiredAt.values()].every((at) => at < leftAt),
    "before a's leave returned",
  );
  const doc = JSON.parse(await etcd.ctl("get", "--print-value-only", `${n.prefix}handoff/b`));
  t.deepEqual(doc.ready["0"], [...Array(ring.partitions).keys()], "b reports them ready in etcd");
  t.is(await etcd.ctl("get", "--prefix", "--keys-only", `${n.prefix}members/a`), "", "then a's lease was revoked");
  await until(() => sawDrained || observer.member("a") === undefined, { what: "the observer to see a go" });
  t.true(sawDrained, "a was drained (registered, not ready) before it was gone");

  // A new owner that never finishes loading: leave gives up after leaveTimeout.
  const { logger, entries } = recordingLogger("info");
  const m = nodes(t);
  const c = await m.member("c", { leaveTimeout: 1000, logger });
  const d = await m.member("d", {
    handoffTimeout: 60_000,
    handoff: {
      acquire: (partition) => (owned(["c", "d"], "d").includes(partition) ? undefined : new Promise(() => {})),
    },
  });
  await until(() => c.member.settled && d.member.version !== undefined && c.cluster.ring.size >= 2, {
    what: "c and d in one version",
  });
  await c.member.leave();
  t.true(
    entries.some((e) => /not ready elsewhere within leaveTimeout/.test(e.msg)),
    "c left after leaveTimeout, saying so",
  );
  t.is(await etcd.ctl("get", "--prefix", "--keys-only", `${m.prefix}members/c`), "");
});

test.serial(
  "the sidecar POSTs its hand-offs to the backend's hooks (retrying), and after SIGKILL + restart under the same name claims nothing until its acquire hooks answered",
  async (t) => {
    t.timeout(180_000, "three sidecar processes on a loaded machine");
    const calls: { hook: string; body: HookCall; at: number; status: number }[] = [];
    let failNext = true;
    let hold = false;
    const held: (() => void)[] = [];
    const server = createServer((req, res) => {
      let text = "";
      req.on("data", (chunk) => (text += chunk));
      req.on("end", () => {
        const body = JSON.parse(text) as HookCall;
        const hook = req.url ?? "";
        const answer = (status: number) => {
          calls.push({ hook, body, at: performance.now(), status });
          res.writeHead(status).end();
        };
        if (hook === "/acquire" && failNext) {
          failNext = false;
          answer(503);
        } else if (hook === "/acquire" && hold) held.push(() => answer(200));
        else answer(200);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    t.teardown(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const hooks = [`--release-hook=${url}/release`, `--acquire-hook=${url}/acquire`, "--ttl=10s"];
    const n = nodes(t);
    const observer = await n.member("observer", { ready: false });
    let child = n.sidecar("side-1", url, hooks);
    const v1 = await until(
      () =>
        observer.cluster.stableVersion === observer.cluster.version && observer.cluster.has("side-1")
          ? observer.cluster.version
          : undefined,
      { what: "side-1 alone, stable", timeout: 120_000 },
    );
    const first = calls.filter((c) => c.hook === "/acquire");
    t.is(first[0]?.status, 503, "the first acquire answered 503");
    t.is(first.length, ring.partitions + 1, "and was retried");
    t.deepEqual(
      first
        .filter((c) => c.status === 200)
        .map((c) => c.body)
        .sort((x, y) => x.partition - y.partition),
      [...Array(ring.partitions).keys()].map((partition) => ({
        partition,
        rank: 0,
        from: null,
        to: "side-1",
        version: v1,
      })),
    );

    const log: Step[] = [];
    const b = await n.member("b", { handoff: recording(log, "b") });
    const v2 = await stableOn([observer, b], ["b", "side-1"], "side-1 and b stable");
    const moved = owned(["b", "side-1"], "b");
    const releases = calls.filter((c) => c.hook === "/release");
    t.deepEqual(
      releases.map((c) => c.body).sort((x, y) => x.partition - y.partition),
      moved.map((partition) => ({ partition, rank: 0, from: "side-1", to: "b", version: v2 })),
    );
    for (const x of log.filter((y) => y.what === "acquire" && y.version === v2)) {
      const release = releases.find((c) => c.body.partition === x.partition);
      t.true(release !== undefined && release.at < x.at, `b acquired ${x.partition} after side-1's hook released it`);
    }

    // SIGKILL and start again under the same name, well within the 10 s TTL.
    hold = true;
    const before = calls.length;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
    child = n.sidecar("side-1", url, hooks);
    const kept = owned(["b", "side-1"], "side-1");
    await until(() => held.length === kept.length, {
      what: "the restarted side-1 calling its acquire hooks",
      timeout: 120_000,
    });
    const readyOf = async () => {
      const text = await etcd.ctl("get", "--print-value-only", `${n.prefix}handoff/side-1`);
      return text.trim() === "" ? [] : ((JSON.parse(text).ready["0"] ?? []) as number[]);
    };
    t.deepEqual(await readyOf(), [], "nothing claimed ready while its acquire hooks have not answered");
    t.is(observer.cluster.version, v2, "it never left the ring: same version");
    t.deepEqual(
      calls.slice(before).filter((c) => c.hook === "/release"),
      [],
      "nothing to release",
    );
    for (const answer of held.splice(0)) answer();
    await until(async () => (await readyOf()).join() === kept.join(), {
      what: "side-1 ready again for its partitions",
    });
    const again = calls.slice(before).filter((c) => c.hook === "/acquire");
    t.deepEqual(
      again.map((c) => c.body).sort((x, y) => x.partition - y.partition),
      kept.map((partition) => ({ partition, rank: 0, from: null, to: "side-1", version: v2 })),
    );
  },
);

test("the leader writes stable only forward: a value ahead of it is never moved back", async (t) => {
  const n = nodes(t);
  const a = await n.member("a");
  const v1 = await stableOn([a], ["a"], "a alone");
  // Another leader's later write (or a leader acting on an old view) got there first.
  await etcd.ctl("put", `${n.prefix}stable`, String(v1 + 50));
  const b = await n.member("b");
  const v2 = await until(
    () => (a.cluster.ring.size === 2 && a.member.settled && b.member.settled ? a.cluster.version : undefined),
    { what: "a version with b, settled" },
  );
  await until(() => a.source.view.ready.get("a") === v2 && a.source.view.ready.get("b") === v2, {
    what: "both reporting it",
  });
  // The leader looks at stable on every change; make one more to be sure it did.
  await b.member.setReady(false);
  await until(() => a.cluster.ring.size === 1 && a.member.settled, { what: "b drained" });
  t.is((await etcd.ctl("get", "--print-value-only", `${n.prefix}stable`)).trim(), String(v1 + 50));
  t.is(a.cluster.stableVersion, v1 + 50);
});

test.serial(
  "the cache example refuses a version it has not reached, and when fenced drops what it held and refuses until it holds again",
  async (t) => {
    t.timeout(120_000, "a TTL of cut-off, then grpc reconnect backoff on a loaded machine");
    const store = await mkdtemp(join(tmpdir(), "ringroute-cache-"));
    const forwarder = await Forwarder.start({ host: "127.0.0.1", port: etcd.clientPort });
    const service = await startCacheService({
      name: "cache-1",
      port: 0,
      etcd: [forwarder.endpoint],
      store,
      cluster: `f${++count}`,
      ttl: 2000,
    });
    t.teardown(async () => {
      await service.kill();
      await forwarder.close();
      await rm(store, { recursive: true, force: true });
    });
    await until(() => service.member.settled && service.member.holds(0, 0), { what: "cache-1 holding everything" });
    const version = service.member.version as number;
    const at = (v: number) => ({ "x-ringroute-version": String(v) });
    t.is((await send(service.url, "/k", { method: "PUT", body: "v1", headers: at(version) })).status, 204);
    t.is((await send(service.url, "/k", { headers: at(version) })).text, "v1");
    const ahead = await send(service.url, "/k", { headers: at(version + 1) });
    t.is(ahead.status, 421, "a version it has not taken up");
    t.is(ahead.text, `version ${version + 1} not reached yet\n`);

    forwarder.cut();
    await until(() => service.member.fencings === 1, { what: "cache-1 fenced" });
    t.is(service.data.size, 0, "what it held is dropped");
    const fenced = await send(service.url, "/k");
    t.is(fenced.status, 421);
    t.regex(fenced.text, /is not held by cache-1/);

    forwarder.restore();
    await until(() => service.member.holds(0, 0) && service.member.settled, {
      what: "cache-1 holding again through the protocol",
      timeout: 90_000,
    });
    t.is((await send(service.url, "/k")).status, 404, "it came back empty: a fenced member's memory is gone");
  },
);
