import test from "ava";
import fc from "fast-check";
import { diff, movement } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { showEvent as show } from "./helpers/events.ts";

/** The brute-force model: compare every (partition, rank) slot of both rings, written as showEvent writes. */
function expectedEvents(before: Ring, after: Ring): string[] {
  const events: string[] = [];
  const ranks = Math.max(before.ownerCount, after.ownerCount);
  for (let p = 0; p < before.config.partitions; p++) {
    for (let r = 0; r < ranks; r++) {
      const was = before.ownersOfPartition(p)[r];
      const now = after.ownersOfPartition(p)[r];
      if (was === now) continue;
      if (was) events.push(`release ${p}/${r} ${was} -> ${now ?? "-"}`);
      if (now) events.push(`acquire ${p}/${r} ${now} <- ${was ?? "-"}`);
    }
  }
  return events.sort();
}

const memberSet = fc.uniqueArray(fc.constantFrom(..."abcdefghij".split("").map((c) => `node-${c}`)), {
  maxLength: 8,
});

test("diff reports exactly the slots that changed hands, for any two member sets", (t) => {
  fc.assert(
    fc.property(
      memberSet,
      memberSet,
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom("jump" as const, "balanced" as const),
      (a, b, partitions, replicas, placement) => {
        const before = Ring.build(a, { partitions, replicas, placement });
        const after = Ring.build(b, { partitions, replicas, placement });
        const events = diff(before, after);
        const got = events.map(show).sort();
        const moved = movement(before, after);
        return (
          JSON.stringify(got) === JSON.stringify(expectedEvents(before, after)) &&
          moved.replicaSlots === new Set(events.map((e) => `${e.partition}/${e.replica}`)).size
        );
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test("a member is never told about a rank it never held", (t) => {
  // Two members, three replicas: rank 2 is empty before and filled after.
  const before = Ring.build(["a", "b"], { partitions: 8, replicas: 3 });
  const after = Ring.build(["a", "b", "c"], { partitions: 8, replicas: 3 });
  for (const event of diff(before, after)) {
    if (event.type === "release") t.is(before.owner(event.partition, event.replica), event.member);
    else t.is(after.owner(event.partition, event.replica), event.member);
    if (event.type === "acquire" && event.replica === 2) t.is(event.from, null);
  }
});

test("replaying the events on the old table gives the new table", (t) => {
  const before = Ring.build(["a", "b", "c", "d"], { partitions: 64, replicas: 2 });
  const after = Ring.build(["a", "c", "d", "e"], { partitions: 64, replicas: 2 });
  const table = Array.from({ length: 64 }, (_, p) => [...before.ownersOfPartition(p)]);
  for (const event of diff(before, after)) {
    const row = table[event.partition] as string[];
    if (event.type === "release") {
      t.is(row[event.replica], event.member);
      row[event.replica] = "";
    } else {
      row[event.replica] = event.member;
    }
  }
  t.deepEqual(
    table,
    Array.from({ length: 64 }, (_, p) => [...after.ownersOfPartition(p)]),
  );
});

test("identical rings differ in nothing; different partition counts cannot be compared", (t) => {
  const ring = Ring.build(["a", "b"]);
  t.deepEqual(diff(ring, Ring.build(["b", "a"])), []);
  t.throws(() => diff(ring, Ring.build(["a", "b"], { partitions: 256 })), { instanceOf: RangeError });
});
