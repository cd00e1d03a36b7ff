import test from "ava";
import { ConfigError } from "../src/errors/config-error.ts";
import { Ring } from "../src/ring/ring.ts";
import { goVectors } from "./helpers/vectors.ts";

test("placement jump: owners match libring's rule computed in Go, for both hashes", (t) => {
  for (const c of goVectors.cases) {
    const ring = Ring.build(c.members, {
      partitions: c.partitions,
      replicas: c.replicas,
      hash: c.hash,
      placement: "jump",
    });
    c.keys.forEach((key, i) => {
      t.is(ring.partitionOf(key), c.partition[i] as number);
      t.deepEqual(
        ring.ownersOf(key),
        c.owners[i],
        `${c.hash} P=${c.partitions} R=${c.replicas} ${JSON.stringify(key)}`,
      );
    });
  }
});

test("placement jump: replica r is the member r places after the primary, wrapping around the sorted list", (t) => {
  const ring = Ring.build(["c", "a", "d", "b"], { partitions: 64, replicas: 3, placement: "jump" });
  t.deepEqual(ring.members, ["a", "b", "c", "d"]);
  let wrapped = 0;
  for (let p = 0; p < 64; p++) {
    const [primary, ...replicas] = ring.ownersOfPartition(p);
    const start = ring.members.indexOf(primary as string);
    for (const [i, member] of replicas.entries()) t.is(member, ring.members[(start + i + 1) % 4] as string);
    if (start + 2 >= 4) wrapped++;
  }
  t.true(wrapped > 0, "some rows wrap past the last member");
});

test("with fewer members than replicas every member owns every partition, each once", (t) => {
  const ring = Ring.build(["x", "y"], { partitions: 16, replicas: 5 });
  t.is(ring.ownerCount, 2);
  for (let p = 0; p < 16; p++) t.deepEqual([...ring.ownersOfPartition(p)].sort(), ["x", "y"]);
});

test("a single partition and a single member are valid rings", (t) => {
  const one = Ring.build(["solo"], { partitions: 1 });
  t.is(one.partitionOf("anything"), 0);
  t.deepEqual(one.ownersOf("anything"), ["solo"]);
  t.deepEqual(one.preferenceList("anything"), ["solo"]);
  const many = Ring.build(["a", "b", "c", "d"], { partitions: 1, replicas: 2, placement: "balanced" });
  t.is(new Set(many.ownersOfPartition(0)).size, 2);
});

test("an empty ring owns nothing but still maps keys to partitions", (t) => {
  const ring = Ring.build([]);
  t.deepEqual(ring.ownersOf("k"), []);
  t.is(ring.ownerOf("k"), undefined);
  t.true(ring.partitionOf("k") < 512);
});

test("the preference list starts with the owners and holds every member once", (t) => {
  for (const placement of ["jump", "balanced"] as const) {
    const ring = Ring.build(["a", "b", "c", "d", "e"], { partitions: 32, replicas: 2, placement });
    for (const key of ["k1", "k2", "k3", "/x/y"]) {
      const list = ring.preferenceList(key);
      t.deepEqual(list.slice(0, 2), [...ring.ownersOf(key)]);
      t.deepEqual([...list].sort(), ["a", "b", "c", "d", "e"]);
    }
  }
});

test("the checksum depends on the member set and config, not on input order", (t) => {
  const a = Ring.build(["n1", "n2", "n3"]);
  t.is(Ring.build(["n3", "n1", "n2"]).checksum, a.checksum);
  t.not(Ring.build(["n1", "n2", "n4"]).checksum, a.checksum);
  t.not(Ring.build(["n1", "n2", "n3"], { replicas: 2 }).checksum, a.checksum);
  t.not(Ring.build(["n1", "n2", "n3"], { placement: "jump" }).checksum, a.checksum);
  t.regex(a.checksum, /^[0-9a-f]{16}$/);
});

test("loads count each member's partitions at each rank", (t) => {
  const ring = Ring.build(["a", "b", "c"], { partitions: 100, replicas: 2 });
  for (let r = 0; r < 2; r++) {
    let total = 0;
    for (const member of ring.members) {
      let held = 0;
      for (let p = 0; p < 100; p++) if (ring.owner(p, r) === member) held++;
      t.is(ring.loads.get(member)?.[r], held);
      total += held;
    }
    t.is(total, 100);
  }
});

test("a ring and its lookups cannot be changed from outside", (t) => {
  const ring = Ring.build(["a", "b"]);
  t.throws(() => (ring.members as string[]).push("c"));
  t.throws(() => (ring.ownersOf("k") as string[]).pop());
  t.throws(() => {
    (ring.config as { partitions: number }).partitions = 1;
  });
});

test("bad settings throw ConfigError naming the field", (t) => {
  const field = (fn: () => unknown) => t.throws(fn, { instanceOf: ConfigError })?.field;
  t.is(
    field(() => Ring.build(["a"], { partitions: 0 })),
    "partitions",
  );
  t.is(
    field(() => Ring.build(["a"], { partitions: 1.5 })),
    "partitions",
  );
  t.is(
    field(() => Ring.build(["a"], { replicas: 0 })),
    "replicas",
  );
  t.is(
    field(() => Ring.build(["a"], { hash: "md5" as "fnv1a32" })),
    "hash",
  );
  t.is(
    field(() => Ring.build(["a"], { placement: "ketama" as "jump" })),
    "placement",
  );
  t.is(
    field(() => Ring.build(["a"], { order: "random" as "lexical" })),
    "order",
  );
  t.is(
    field(() => Ring.build(["a", "a"])),
    "members",
  );
  t.is(
    field(() => Ring.build(["a", ""])),
    "members",
  );
});
