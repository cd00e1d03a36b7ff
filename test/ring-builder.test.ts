import test from "ava";
import { Cluster } from "../src/cluster.ts";
import type { Member, MembershipSource, SnapshotSink } from "../src/membership/source.ts";
import { Ring, type RingConfig } from "../src/ring/ring.ts";
import { RingBuilder } from "../src/serving/ring-builder.ts";
import { within } from "./helpers/until.ts";

const names = (n: number, prefix = "m") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

class ManualSource implements MembershipSource {
  readonly kind = "manual";
  sink: SnapshotSink | undefined;
  async start(sink: SnapshotSink): Promise<void> {
    this.sink = sink;
  }
  async stop(): Promise<void> {}
  send(...members: string[]): void {
    this.sink?.snapshot(
      members.map((name) => ({ name, url: `http://${name}.test`, tags: {}, state: "alive" }) as Member),
    );
  }
}

/** A build function the test finishes by hand, recording what it was asked for. */
function manualBuild() {
  const calls: { members: string[]; finish(): void; fail(): void }[] = [];
  const build = (members: readonly string[], config: RingConfig) =>
    new Promise<Ring>((resolve, reject) => {
      calls.push({
        members: [...members].sort(),
        finish: () => resolve(Ring.build(members, config)),
        fail: () => reject(new Error("thread died")),
      });
    });
  return { build, calls };
}

test("a ring built on the thread has the synchronous build's table and checksum", async (t) => {
  const builder = new RingBuilder();
  t.teardown(() => builder.close());
  for (const config of [
    { partitions: 4096, replicas: 3, placement: "balanced" as const },
    { partitions: 1024, replicas: 2, placement: "jump" as const, hash: "fnv1a64" as const, order: "natural" as const },
  ]) {
    const members = names(40);
    const here = Ring.build(members, config);
    const there = await within(builder.build(members, here.config), { what: "a ring from the thread" });
    t.is(there.checksum, here.checksum);
    t.deepEqual(there.members, here.members);
    t.deepEqual([...there.table], [...here.table]);
  }
});

test("builds requested together each get their own ring", async (t) => {
  const builder = new RingBuilder();
  t.teardown(() => builder.close());
  const config = Ring.build([], { partitions: 512, placement: "balanced" }).config;
  const sets = [names(3), names(7, "x"), []];
  const rings = await within(Promise.all(sets.map((s) => builder.build(s, config))), { what: "three rings" });
  t.deepEqual(
    rings.map((r) => r.checksum),
    sets.map((s) => Ring.build(s, config).checksum),
  );
});

test("a closed builder refuses builds", async (t) => {
  const builder = new RingBuilder();
  await builder.close();
  await t.throwsAsync(builder.build(["a"], Ring.build([]).config), { message: /closed/ });
});

test("a cluster with a ring builder routes by the old ring until the new one is built", async (t) => {
  const source = new ManualSource();
  const { build, calls } = manualBuild();
  const cluster = new Cluster({ source, ring: { partitions: 64 }, build });
  const rings: string[] = [];
  cluster.listen({ ring: (ring) => rings.push(ring.members.join(",")) });
  await cluster.start();
  source.send("a", "b");
  t.false(cluster.synced, "not synced before its first ring is built");
  t.is(cluster.size, 0);
  calls[0]?.finish();
  await within(cluster.idle(), { what: "the first build" });
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["a", "b"]);

  source.send("a", "b", "c");
  t.deepEqual(cluster.ring.members, ["a", "b"], "the old ring while the build runs");
  t.is(cluster.ownerOf("k")?.name, Ring.build(["a", "b"], { partitions: 64 }).ownerOf("k"));
  calls[1]?.finish();
  await within(cluster.idle(), { what: "the second build" });
  t.deepEqual(cluster.ring.members, ["a", "b", "c"]);
  t.is(cluster.ring.checksum, Ring.build(["a", "b", "c"], { partitions: 64 }).checksum);
  t.deepEqual(rings, ["a,b", "a,b,c"]);
});

test("snapshots that arrive during a build are coalesced: only the latest is built next", async (t) => {
  const source = new ManualSource();
  const { build, calls } = manualBuild();
  const cluster = new Cluster({ source, ring: { partitions: 64 }, build });
  const rings: string[] = [];
  cluster.listen({ ring: (ring) => rings.push(ring.members.join(",")) });
  await cluster.start();
  source.send("a");
  source.send("a", "b");
  source.send("a", "b", "c");
  source.send("a", "c");
  t.is(calls.length, 1, "one build at a time");
  calls[0]?.finish();
  await within(
    (async () => {
      while (calls.length < 2) await new Promise((resolve) => setImmediate(resolve));
    })(),
    { what: "the second build to start" },
  );
  t.deepEqual(
    calls.map((c) => c.members),
    [["a"], ["a", "c"]],
  );
  calls[1]?.finish();
  await within(cluster.idle(), { what: "the builds" });
  t.deepEqual(rings, ["a", "a,c"]);
  t.deepEqual(
    cluster.members().map((m) => m.name),
    ["a", "c"],
  );
});

test("a failed build does not lose the snapshot: the ring is built in place", async (t) => {
  const source = new ManualSource();
  const { build, calls } = manualBuild();
  const cluster = new Cluster({ source, ring: { partitions: 64 }, build });
  await cluster.start();
  source.send("a", "b");
  calls[0]?.fail();
  await within(cluster.idle(), { what: "the failed build" });
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  t.is(cluster.ring.checksum, Ring.build(["a", "b"], { partitions: 64 }).checksum);
});

test("a build that finishes after stop() changes nothing", async (t) => {
  const source = new ManualSource();
  const { build, calls } = manualBuild();
  const cluster = new Cluster({ source, ring: { partitions: 64 }, build });
  await cluster.start();
  source.send("a");
  await cluster.stop();
  calls[0]?.finish();
  await within(cluster.idle(), { what: "the build" });
  t.false(cluster.synced);
  t.is(cluster.size, 0);
});

test("a cluster building on the thread gets the synchronous cluster's ring", async (t) => {
  const builder = new RingBuilder();
  t.teardown(() => builder.close());
  const ring = { partitions: 2048, placement: "balanced" as const };
  const threaded = new ManualSource();
  const inline = new ManualSource();
  const a = new Cluster({ source: threaded, ring, build: builder.build });
  const b = new Cluster({ source: inline, ring });
  await Promise.all([a.start(), b.start()]);
  for (const members of [names(20), names(19), [...names(19), "z"]]) {
    threaded.send(...members);
    inline.send(...members);
    await within(a.idle(), { what: "the threaded build" });
    t.is(a.ring.checksum, b.ring.checksum);
  }
});
