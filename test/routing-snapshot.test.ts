import test from "ava";
import { Cluster } from "../src/cluster.ts";
import type { Coordination } from "../src/handoff/coordination.ts";
import { RoutingTable } from "../src/handoff/table.ts";
import { Ring } from "../src/ring/ring.ts";
import { RoutingFeed, type RoutingSnapshot, routingTable } from "../src/serving/routing-snapshot.ts";
import { TestSource } from "./helpers/source.ts";

const config = { partitions: 64, replicas: 2 };

/** A source that coordinates hand-offs: the test says which ring to route by. */
class CoordinatedSource extends TestSource {
  /** The ring the hand-off rule routes by, every slot ready at its owner in it (the test says which). */
  routingRing: Ring | undefined;
  readonly coordination: Coordination;
  constructor() {
    super(undefined, "coordinated");
    this.coordination = {
      version: 1,
      stableVersion: 1,
      consistent: false,
      partitionsInHandoff: 0,
      stalled: undefined,
      handoffWait: 2000,
      routing: () => (this.routingRing === undefined ? undefined : RoutingTable.ready(this.routingRing)),
    };
  }
}

function follow(feed: RoutingFeed): RoutingSnapshot[] {
  const sent: RoutingSnapshot[] = [];
  feed.listen((s) => sent.push(s));
  return sent;
}

test("the feed publishes the ring the cluster routes by, with a new version for each change of it", async (t) => {
  const source = new CoordinatedSource();
  const cluster = new Cluster({ source, ring: config });
  await cluster.start();
  const old = Ring.build(["a", "b"], config);
  source.routingRing = old;
  source.send("a", "b");
  const feed = new RoutingFeed(cluster);
  const sent = follow(feed);
  t.is(routingTable(feed.current).checksum, old.checksum);

  // A third member joins: the cluster's ring changes at once, but hand-offs keep routing on the old owners.
  source.send("a", "b", "c");
  t.is(cluster.ring.checksum, Ring.build(["a", "b", "c"], config).checksum);
  t.is(sent.length, 1, "c's record is new");
  t.is(routingTable(sent[0] as RoutingSnapshot).checksum, old.checksum, "routed by the old owners still");
  source.send("a", "b", "c");
  t.is(sent.length, 1, "nothing changed: nothing sent");
  // ...until the hand-offs settle: the same members, the same ring, a new routing.
  source.routingRing = cluster.ring;
  source.send("a", "b", "c");
  t.deepEqual(
    sent.map((s) => s.version),
    [1, 2],
  );
  t.is(feed.current.version, 2);
  t.is(routingTable(sent[1] as RoutingSnapshot).checksum, cluster.ring.checksum);
  feed.stop();
});

test("a member's new URL under the same name is a new version, with the same ring", async (t) => {
  const source = new TestSource(["a", "b"]);
  const cluster = new Cluster({ source, ring: config });
  await cluster.start();
  const feed = new RoutingFeed(cluster);
  const sent = follow(feed);
  const checksum = cluster.ring.checksum;
  source.send("a", { name: "b", url: "http://b2.test:80" });
  t.is(sent.length, 1);
  t.is(sent[0]?.routing.checksum, checksum);
  t.is(sent[0]?.known.find((m) => m.name === "b")?.url, "http://b2.test:80");
  source.send("a", { name: "b", url: "http://b2.test:80" });
  t.is(sent.length, 1, "the same snapshot again: no new version");
  source.send("a", { name: "b", url: "http://b2.test:80", state: "failed" });
  t.deepEqual(
    sent.map((s) => s.version),
    [1, 2],
  );
  t.deepEqual(sent[1]?.routing.members, ["a"]);
  feed.stop();
});
