import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { StaticSource } from "../src/membership/static.ts";

const names = ["a", "b", "c"];
const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);

async function clusterAt(local: string | undefined) {
  const source = new StaticSource(names.map((name) => ({ name, url: `http://${name}.invalid` })));
  const cluster = new Cluster({ source, local, ring: { replicas: 3 } });
  await cluster.start();
  return cluster;
}

test("with n = R = 3 every member is local for every key, and exactly one is its primary", async (t) => {
  const clusters = await Promise.all(names.map(clusterAt));
  t.teardown(() => Promise.all(clusters.map((c) => c.stop())));
  for (const key of keys) {
    t.deepEqual(
      clusters.map((c) => c.isLocal(key)),
      [true, true, true],
    );
    t.is(clusters.filter((c) => c.isPrimary(key)).length, 1, key);
    for (let rank = 0; rank < 3; rank++) t.is(clusters.filter((c) => c.ownsRank(key, rank)).length, 1);
    const primary = clusters.find((c) => c.isPrimary(key)) as Cluster;
    t.is(names[clusters.indexOf(primary)], primary.ring.ownerOf(key));
  }
});

test("without a local member, or past the owner count, nothing is owned", async (t) => {
  const cluster = await clusterAt(undefined);
  const alone = await clusterAt("a");
  t.teardown(() => Promise.all([cluster.stop(), alone.stop()]));
  t.false(cluster.isPrimary("k"));
  t.false(cluster.ownsRank("k", 0));
  for (const key of keys) t.false(alone.ownsRank(key, 3));
});
