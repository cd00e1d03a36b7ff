import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { Cluster } from "../src/cluster.ts";
import { SerfRpcClient } from "../src/membership/serf/rpc.ts";
import { memberState, SerfSource } from "../src/membership/serf/source.ts";
import { hostPort } from "../src/utils/fields.ts";
import { expectedEvents, showEvent } from "./helpers/events.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { SerfAgents } from "./helpers/serf.ts";
import { until } from "./helpers/until.ts";

const agents = new SerfAgents();
test.after.always(() => agents.stopAll());

const ringConfig = { partitions: 128, replicas: 2 };
/** libring's WatchTags: only members tagged ring=active are in the ring. */
const watch = { ring: "^active$" };

/** What a cluster said during one step. */
interface Heard {
  /** performance.now() of the last ring change. */
  ringAt: number;
  members: string[];
  moves: string[];
  rings: string[][];
  sources: string[];
}

function listenTo(cluster: Cluster): { heard: Heard; reset(): void } {
  const fresh = (): Heard => ({ ringAt: 0, members: [], moves: [], rings: [], sources: [] });
  const box = { heard: fresh(), reset: () => Object.assign(box.heard, fresh()) };
  cluster.listen({
    memberUp: (m) => box.heard.members.push(`up ${m.name}`),
    memberDown: (m) => box.heard.members.push(`down ${m.name} ${m.state}`),
    acquire: (e) => box.heard.moves.push(showEvent(e)),
    release: (e) => box.heard.moves.push(showEvent(e)),
    ring: (ring) => {
      box.heard.ringAt = performance.now();
      box.heard.rings.push([...ring.members]);
    },
    source: (up) => box.heard.sources.push(up ? "up" : "down"),
  });
  return box;
}

/** Partition events between two member sets, from rings built here; sorted. */
const expectedMoves = (before: string[], after: string[], only?: string) =>
  expectedEvents(before, after, ringConfig, only);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for a condition on the real agents, with the 30 s deadline of every real-program wait. */
const waitFor = (what: string, condition: () => boolean) => until(condition, { what, interval: 5 });

/** Starts agents with ring tags and an http tag each; joins them all to `hub`. */
async function ringAgent(name: string, hub?: string, extra: Record<string, string> = {}) {
  const agent = await agents.start(name, {
    tags: { ring: "active", http: `127.0.0.1:${20000 + Number(name.slice(1))}`, ...extra },
  });
  if (hub) await agents.join(name, hub);
  return agent;
}

async function aliveSeenBy(rpc: string, count: number): Promise<void> {
  const client = await SerfRpcClient.connect({ address: rpc });
  try {
    await until(async () => (await client.membersFiltered({ Status: "alive" })).length >= count, {
      what: `${count} alive members seen by the agent at ${rpc}`,
    });
  } finally {
    client.close();
  }
}

test.serial(
  "the ring follows a Serf cluster exactly: join, graceful leave, crash, drain by tag, agent restart, undrain",
  async (t) => {
    t.timeout(120_000);
    // The proxy's own agent has no ring tag: it watches, it is not a member.
    const gw = await agents.start("gw", { tags: { role: "gateway" } });
    for (const name of ["n1", "n2", "n3"]) await ringAgent(name, "gw");
    await aliveSeenBy(gw.rpc, 4);

    const { logger, entries } = recordingLogger();
    const options = { rpc: gw.rpc, tags: watch, reconnectMin: 100, reconnectMax: 400, logger };
    const proxy = stopsAfter(t, new Cluster({ source: new SerfSource(options), ring: ringConfig }));
    const local = stopsAfter(t, new Cluster({ source: new SerfSource(options), ring: ringConfig, local: "n1" }));
    const proxyHeard = listenTo(proxy);
    const localHeard = listenTo(local);
    await proxy.start();
    await local.start();
    t.true(proxy.synced && local.synced);
    t.deepEqual(proxy.ring.members, ["n1", "n2", "n3"]);
    t.is(proxy.member("n2")?.url, "http://127.0.0.1:20002");
    t.deepEqual(proxyHeard.heard.moves.sort(), expectedMoves([], ["n1", "n2", "n3"]));
    t.deepEqual(localHeard.heard.moves.sort(), expectedMoves([], ["n1", "n2", "n3"], "n1"));

    // A bare RPC subscriber on the same agent: when Serf delivers each event, to tell Serf's time from ours.
    let lastDelivery = 0;
    const subscribe = async () => {
      const client = await SerfRpcClient.connect({ address: gw.rpc });
      await client.stream("member-join,member-leave,member-failed,member-update", () => {
        lastDelivery = performance.now();
      });
      return client;
    };
    let watcher = await subscribe();
    t.teardown(() => watcher.close());

    let current = ["n1", "n2", "n3"];
    const step = async (
      name: string,
      action: () => Promise<unknown>,
      next: string[],
      members: string[],
      done: () => boolean = () => sameMembers(proxy.ring.members, next) && sameMembers(local.ring.members, next),
    ) => {
      proxyHeard.reset();
      localHeard.reset();
      const started = performance.now();
      await action();
      await waitFor(name, done);
      // The actions may return after the ring moved (`serf leave` waits for the agent to exit).
      const ringAt = Math.max(proxyHeard.heard.ringAt, localHeard.heard.ringAt);
      const converged = ringAt > 0 ? ringAt : performance.now();
      const serf = lastDelivery > started ? lastDelivery - started : Number.NaN;
      // Settle: nothing more may arrive for this step (no duplicate or late events). A fixed wait
      // because the events come from real Serf agents, whose clock a test cannot move; 1.5 s
      // covers the agent's 1 s event coalescing.
      await sleep(1500);
      const split = Number.isNaN(serf)
        ? ""
        : `; Serf delivered its event after ${Math.round(serf)} ms, the ring followed ${Math.round(converged - started - serf)} ms later`;
      const line = `${name}: ${Math.round(converged - started)} ms in all${split}`;
      t.log(line); // the README's convergence figures come from these lines (ava --verbose)
      for (const [view, heard, only] of [
        ["proxy", proxyHeard.heard, undefined],
        ["local n1", localHeard.heard, "n1"],
      ] as const) {
        t.deepEqual([...heard.members].sort(), [...members].sort(), `${name}: ${view} member events`);
        t.deepEqual([...heard.moves].sort(), expectedMoves(current, next, only), `${name}: ${view} partition events`);
        t.is(heard.rings.length, sameMembers(current, next) ? 0 : 1, `${name}: ${view} ring changes`);
      }
      t.deepEqual(proxy.ring.members, [...next].sort());
      current = next;
    };

    await step(
      "a fourth member joins",
      async () => {
        await ringAgent("n4");
        await agents.join("n4", "gw");
      },
      ["n1", "n2", "n3", "n4"],
      ["up n4"],
    );
    await step("a member leaves gracefully", () => agents.leave("n2"), ["n1", "n3", "n4"], ["down n2 left"]);
    await step("a member is SIGKILLed", () => agents.kill("n3"), ["n1", "n4"], ["down n3 failed"]);
    await step(
      "a member's ring tag stops matching",
      () => agents.tags("n4", { ring: "draining" }),
      ["n1"],
      ["down n4 left"],
    );
    t.true(proxy.has("n1") && !proxy.has("n4"));
    t.is(proxy.member("n4"), undefined);

    watcher.close();
    let joined = 0;
    let resynced = 0;
    await step(
      "the agent the proxy talks to restarts",
      async () => {
        await agents.kill("gw", "SIGTERM");
        await waitFor("source down", () => !proxy.sourceUp && !local.sourceUp);
        const alone = () => entries.filter((e) => /knows only itself/.test(e.msg)).length;
        await agents.restart("gw");
        // Both sources meet an agent that knows only itself, which must not be taken
        // for a cluster where everyone else is gone.
        await waitFor("both sources to reach the lonely agent", () => alone() >= 2);
        t.false(proxy.sourceUp || local.sourceUp);
        t.deepEqual(proxy.ring.members, ["n1"]);
        joined = performance.now();
        await agents.join("gw", "n1");
      },
      ["n1"],
      [],
      () => {
        const up = proxy.sourceUp && local.sourceUp;
        if (up && resynced === 0) resynced = performance.now();
        return up;
      },
    );
    const line = `the restarted agent rejoins its cluster: sources resynced ${Math.round(resynced - joined)} ms after \`serf join\` was issued`;
    t.log(line);
    t.true(entries.some((e) => e.level === "warn" && /knows only itself/.test(e.msg)));
    t.deepEqual(proxyHeard.heard.sources, ["down", "up"]);
    t.deepEqual(localHeard.heard.sources, ["down", "up"]);
    watcher = await subscribe();

    await step("the ring tag matches again", () => agents.tags("n4", { ring: "active" }), ["n1", "n4"], ["up n4"]);
    t.true(entries.some((e) => e.msg === "serf agent unreachable" && e.rpc === gw.rpc));
    watcher.close();

    await proxy.stop();
    await local.stop();
  },
);

test.serial(
  "a member's URL comes from its URL tag; a full URL is taken as is, a member without one stays out",
  async (t) => {
    const hub = await agents.start("u0", { tags: { role: "gateway" } });
    await agents.start("u1", { tags: { ring: "active", http: "https://u1.example:8443/base" } });
    await agents.start("u2", { tags: { ring: "active" } });
    await agents.join("u1", "u0");
    await agents.join("u2", "u0");
    await aliveSeenBy(hub.rpc, 3);
    const { logger, entries } = recordingLogger();
    const cluster = stopsAfter(t, new Cluster({ source: new SerfSource({ rpc: hub.rpc, tags: watch, logger }) }));
    await cluster.start();
    t.deepEqual(cluster.ring.members, ["u1"]);
    t.is(cluster.member("u1")?.url, "https://u1.example:8443/base");
    t.deepEqual(
      entries.filter((e) => e.level === "warn").map((e) => [e.msg, e.member, e.tag, e.problem]),
      [["serf member has no usable URL tag; left out of the ring", "u2", "http", "missing"]],
    );
    // Giving it an address brings it in.
    await agents.tags("u2", { http: "127.0.0.1:9" });
    await waitFor("u2 in the ring", () => cluster.has("u2"));
    t.is(cluster.member("u2")?.url, "http://127.0.0.1:9");
    await cluster.stop();
    await Promise.all(["u0", "u1", "u2"].map((n) => agents.kill(n)));
  },
);

test.serial("an agent with an RPC auth key needs it; a wrong key keeps the source down", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-serf-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const agent = await agents.start("k1", { tags: { ring: "active", http: "127.0.0.1:1" }, authKey: "s3cret", dir });
  const wrong = stopsAfter(
    t,
    new Cluster({
      source: new SerfSource({ rpc: agent.rpc, authKey: "nope", reconnectMin: 50 }),
    }),
  );
  const errors: string[] = [];
  wrong.listen({ sourceError: (e) => errors.push(e.message) });
  await wrong.start();
  t.false(wrong.synced);
  t.regex(errors[0] ?? "", /Invalid authentication token/);
  await wrong.stop();
  const noKey = stopsAfter(t, new Cluster({ source: new SerfSource({ rpc: agent.rpc }) }));
  const noKeyErrors: string[] = [];
  noKey.listen({ sourceError: (e) => noKeyErrors.push(e.message) });
  await noKey.start();
  t.false(noKey.synced);
  t.regex(noKeyErrors[0] ?? "", /Authentication required/);
  await noKey.stop();
  const right = stopsAfter(t, new Cluster({ source: new SerfSource({ rpc: agent.rpc, authKey: "s3cret" }) }));
  await right.start();
  t.deepEqual(right.ring.members, ["k1"]);
  await right.stop();
  await agents.kill("k1");
});

test.serial("an agent that is not there yet: unsynced and down, then synced once it starts", async (t) => {
  const port = (await import("./helpers/serf.ts")).freePort;
  const rpcPort = await port();
  const bindPort = await port();
  const cluster = stopsAfter(
    t,
    new Cluster({
      source: new SerfSource({ rpc: `127.0.0.1:${rpcPort}`, reconnectMin: 50, reconnectMax: 100 }),
    }),
  );
  await cluster.start();
  t.false(cluster.synced);
  t.false(cluster.sourceUp);
  await agents.start("late", { tags: { http: "127.0.0.1:2" } }, { bindPort, rpcPort });
  await waitFor("synced", () => cluster.synced);
  t.deepEqual(cluster.ring.members, ["late"]);
  await cluster.stop();
  await agents.kill("late");
});

test("Serf statuses map to member states: leaving already counts as left", (t) => {
  t.is(memberState("alive"), "alive");
  t.is(memberState("leaving"), "left");
  t.is(memberState("left"), "left");
  t.is(memberState("failed"), "failed");
  t.is(memberState("none"), "failed");
});

test("RPC addresses are host:port or [v6]:port", (t) => {
  const dial = (address: string) => hostPort(address, "address", { dial: true });
  t.deepEqual(dial("127.0.0.1:7373"), { host: "127.0.0.1", port: 7373 });
  t.deepEqual(dial("[::1]:7373"), { host: "::1", port: 7373 });
  t.deepEqual(dial("serf.local:1"), { host: "serf.local", port: 1 });
  for (const bad of ["7373", "::1:7373", "h:0", "h:70000", "h:", ":7373"]) t.throws(() => dial(bad));
});

/** Stops the cluster when the test ends, passed or failed: a started source keeps the process alive. */
function stopsAfter(t: ExecutionContext, cluster: Cluster): Cluster {
  t.teardown(() => cluster.stop());
  return cluster;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}
