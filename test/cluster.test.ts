import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { SourceError } from "../src/errors/source-error.ts";
import type { SnapshotSink } from "../src/membership/source.ts";
import { Ring } from "../src/ring/ring.ts";
import { ManualClock } from "./helpers/clock.ts";
import { expectedEvents, showEvent } from "./helpers/events.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { member, TestSource } from "./helpers/source.ts";

const ringConfig = { partitions: 64, replicas: 2 };

/** Everything a cluster tells its listeners, in order, as readable lines. */
function record(cluster: Cluster): string[] {
  const log: string[] = [];
  cluster.listen({
    memberUp: (m) => log.push(`up ${m.name}`),
    memberDown: (m) => log.push(`down ${m.name} ${m.state}`),
    acquire: (e) => log.push(showEvent(e)),
    release: (e) => log.push(showEvent(e)),
    ring: (ring) => log.push(`ring ${ring.members.join(",")}`),
    source: (up) => log.push(`source ${up ? "up" : "down"}`),
  });
  return log;
}

/** Partition events between two member sets, from rings built here, not by the cluster. */
const expected = (before: string[], after: string[], only?: string) => expectedEvents(before, after, ringConfig, only);

/** The partition events in the log, sorted: their order is checked on its own. */
const partitionEvents = (log: string[]) => log.filter((l) => l.startsWith("acquire") || l.startsWith("release")).sort();

async function started(options: { local?: string } = {}) {
  const source = new TestSource();
  const clock = new ManualClock();
  const { logger, entries } = recordingLogger();
  const cluster = new Cluster({ source, ring: ringConfig, clock, logger, ...options });
  const log = record(cluster);
  await cluster.start();
  return { source, cluster, log, clock, entries };
}

test("the first snapshot brings every member up and hands out every slot", async (t) => {
  const { source, cluster, log } = await started();
  t.false(cluster.synced);
  source.send("a", "b", "c");
  t.true(cluster.synced);
  t.true(cluster.sourceUp);
  t.deepEqual(log.slice(0, 4), ["source up", "up a", "up b", "up c"]);
  t.deepEqual(partitionEvents(log), expected([], ["a", "b", "c"]));
  t.is(log.at(-1), "ring a,b,c");
  t.is(cluster.ring.checksum, Ring.build(["c", "b", "a"], ringConfig).checksum);
});

test("a join reports exactly the slots that change hands, releases before acquires, ring last", async (t) => {
  const { source, log } = await started();
  source.send("a", "b", "c");
  log.length = 0;
  source.send("a", "b", "c", "d");
  const moves = partitionEvents(log);
  t.deepEqual(moves, expected(["a", "b", "c"], ["a", "b", "c", "d"]));
  t.true(moves.length > 0);
  t.is(new Set(moves).size, moves.length);
  const lastRelease = log.length - 1 - [...log].reverse().findIndex((l) => l.startsWith("release"));
  const firstAcquire = log.findIndex((l) => l.startsWith("acquire"));
  t.true(lastRelease < firstAcquire);
  t.is(log[0], "up d");
  t.is(log.at(-1), "ring a,b,c,d");
});

test("a member reported failed or left, or missing, goes down; its partitions move", async (t) => {
  const { source, cluster, log } = await started();
  source.send("a", "b", "c", "d");
  log.length = 0;
  source.send("a", { name: "b", state: "failed" }, { name: "c", state: "left" });
  t.deepEqual(log.slice(0, 3), ["down b failed", "down c left", "down d left"]);
  t.deepEqual(partitionEvents(log), expected(["a", "b", "c", "d"], ["a"]));
  t.deepEqual(
    cluster.knownMembers().map((m) => `${m.name} ${m.state}`),
    ["a alive", "b failed", "c left"],
  );
  t.deepEqual(
    cluster.members().map((m) => m.name),
    ["a"],
  );
});

test("a snapshot with the same ring members changes nothing but the known members", async (t) => {
  const { source, cluster, log } = await started();
  source.send("a", "b");
  log.length = 0;
  source.send({ name: "a", url: "http://moved:1" }, "b", { name: "x", state: "failed" });
  t.deepEqual(log, []);
  t.is(cluster.member("a")?.url, "http://moved:1");
  t.is(cluster.member("x")?.state, "failed");
});

test("the local view reports only the local member's slots, with the other member", async (t) => {
  const { source, log } = await started({ local: "b" });
  source.send("a", "b", "c");
  t.deepEqual(partitionEvents(log), expected([], ["a", "b", "c"], "b"));
  log.length = 0;
  source.send("a", "b", "c", "d");
  const moves = partitionEvents(log);
  t.deepEqual(moves, expected(["a", "b", "c"], ["a", "b", "c", "d"], "b"));
  t.true(moves.every((m) => / b /.test(m)));
  log.length = 0;
  source.send("b", "c", "d");
  t.deepEqual(partitionEvents(log), expected(["a", "b", "c", "d"], ["b", "c", "d"], "b"));
  // b gains from a's departure, and is told whom it took each slot from.
  t.true(partitionEvents(log).some((m) => m.endsWith("<- a")));
});

test("without local, every member's slots are reported", async (t) => {
  const { source, log } = await started();
  source.send("a", "b");
  const members = new Set(partitionEvents(log).map((l) => l.split(" ")[2]));
  t.deepEqual([...members].sort(), ["a", "b"]);
});

test("a filter keeps members out of the ring, and one that stops matching leaves it", async (t) => {
  const source = new TestSource();
  const cluster = new Cluster({ source, ring: ringConfig, filter: (m) => m.tags.ring === "active" });
  const log = record(cluster);
  await cluster.start();
  const active = { ring: "active" };
  source.send({ name: "a", tags: active }, { name: "b", tags: active }, { name: "c", tags: {} });
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  log.length = 0;
  source.send({ name: "a", tags: active }, { name: "b", tags: { ring: "drain" } }, { name: "c", tags: {} });
  t.deepEqual(cluster.ring.members, ["a"]);
  t.is(log[0], "down b alive");
  t.deepEqual(partitionEvents(log), expected(["a", "b"], ["a"]));
});

test("a source that goes down leaves the ring as it was and is heard once per outage", async (t) => {
  const { source, cluster, log } = await started();
  const errors: string[] = [];
  cluster.listen({ sourceError: (e) => errors.push(e.message) });
  source.send("a", "b");
  const ring = cluster.ring;
  log.length = 0;
  source.sink?.down(new Error("one"));
  source.sink?.down(new Error("two"));
  t.is(cluster.ring, ring);
  t.false(cluster.sourceUp);
  t.true(cluster.synced);
  t.deepEqual(log, ["source down"]);
  t.deepEqual(errors, ["one", "two"]);
  source.send("a", "b");
  t.deepEqual(log, ["source down", "source up"]);
  t.is(cluster.ring, ring);
});

test("a source that fails before its first snapshot leaves the cluster unsynced and empty", async (t) => {
  const { source, cluster, log } = await started();
  source.sink?.down(new Error("no file"));
  t.false(cluster.synced);
  t.is(cluster.size, 0);
  t.deepEqual(log, ["source down"]);
});

test("lookups answer from the current ring with the source's members", async (t) => {
  const { source, cluster } = await started({ local: "b" });
  source.send("a", "b", "c");
  const ring = Ring.build(["a", "b", "c"], ringConfig);
  for (const key of ["user-1", "user-2", "/x/y", "ünïcode"]) {
    t.is(cluster.ownerOf(key)?.name, ring.ownerOf(key));
    t.is(cluster.ownerOf(key)?.url, `http://${ring.ownerOf(key)}.test:80`);
    t.deepEqual(
      cluster.ownersOf(key).map((m) => m.name),
      [...ring.ownersOf(key)],
    );
    t.deepEqual(
      cluster.ownersOf(key, 1).map((m) => m.name),
      ring.ownersOf(key).slice(0, 1),
    );
    t.deepEqual(
      cluster.ownersOf(key, 3).map((m) => m.name),
      ring.preferenceList(key),
    );
    t.is(cluster.isLocal(key), ring.ownersOf(key).includes("b"));
  }
  t.is(cluster.size, 3);
  t.true(cluster.has("a"));
  t.false(cluster.has("z"));
});

test("an empty cluster has no owner for any key", async (t) => {
  const { cluster } = await started();
  t.is(cluster.ownerOf("k"), undefined);
  t.deepEqual(cluster.ownersOf("k"), []);
  t.false(cluster.isLocal("k"));
});

test("after stop, a late snapshot changes nothing", async (t) => {
  const { source, cluster, log } = await started();
  source.send("a");
  const sink = source.sink as SnapshotSink;
  await cluster.stop();
  t.is(source.stopped, 1);
  log.length = 0;
  sink.snapshot([member("a"), member("b")]);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.deepEqual(log, []);
});

test("a listener that throws does not stop the others or the ring, and is logged", async (t) => {
  const { source, cluster, log, entries } = await started();
  cluster.listen({
    memberUp: () => {
      throw new Error("boom");
    },
  });
  source.send("a");
  t.deepEqual(cluster.ring.members, ["a"]);
  t.true(log.includes("up a"));
  const logged = entries.filter((e) => e.level === "error");
  t.deepEqual(
    logged.map((e) => [e.msg, e.err?.message]),
    [["cluster listener threw", "boom"]],
  );
});

test("sourceState says whether the source delivers, since when on the clock, and its last error", async (t) => {
  const { source, cluster, clock } = await started();
  const made = clock.now();
  t.deepEqual(cluster.sourceState, { up: false, since: made });
  clock.advance(100);
  source.fail(new SourceError("test", "not yet"));
  t.deepEqual(
    cluster.sourceState,
    { up: false, since: made, lastError: "not yet" },
    "never up: down since it was made",
  );
  clock.advance(100);
  source.send("a");
  t.deepEqual(cluster.sourceState, { up: true, since: made + 200 });
  clock.advance(5000);
  source.send("a", "b");
  t.deepEqual(cluster.sourceState, { up: true, since: made + 200 }, "a further snapshot changes nothing");
  clock.advance(1000);
  source.fail(new SourceError("test", "agent gone"));
  clock.advance(3000);
  source.fail(new SourceError("test", "agent still gone"));
  t.deepEqual(cluster.sourceState, { up: false, since: made + 6200, lastError: "agent still gone" });
  t.is(cluster.sourceUp, false);
  clock.advance(800);
  source.send("a", "b");
  t.deepEqual(cluster.sourceState, { up: true, since: made + 10_000 });
  t.true(Object.isFrozen(cluster.sourceState));
});

test("the source going down is logged once with its error, and coming back once", async (t) => {
  const { source, clock, entries } = await started();
  source.send("a");
  entries.length = 0;
  source.fail(new SourceError("test", "one"));
  source.fail(new SourceError("test", "two"));
  clock.advance(2500);
  source.send("a");
  source.send("a", "b");
  const told = entries.filter((e) => e.level === "warn" || e.level === "info");
  t.deepEqual(
    told.map((e) => [e.level, e.msg, e.source, e.err?.message, e.downFor]),
    [
      ["warn", "membership source down; keeping the last member list", "test", "one", undefined],
      ["info", "membership source back up", "test", undefined, 2500],
    ],
  );
});

test("unsubscribing stops the events", async (t) => {
  const { source, cluster } = await started();
  const seen: string[] = [];
  const off = cluster.listen({ memberUp: (m) => seen.push(m.name) });
  source.send("a");
  off();
  source.send("a", "b");
  t.deepEqual(seen, ["a"]);
});
