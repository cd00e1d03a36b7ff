/**
 * The routing table as a value: what it says per slot, its checksum, and
 * the plain-data form workers receive it in.
 */
import test from "ava";
import { noneReady, RoutingTable, type SlotState } from "../src/handoff/table.ts";
import { Ring } from "../src/ring/ring.ts";

const ring = Ring.build(["a", "b", "c"], { partitions: 16, replicas: 2 });

function slots(change: (p: number, r: number) => { member: string | undefined; state: SlotState } | undefined) {
  const out = [];
  for (let p = 0; p < 16; p++) {
    for (let r = 0; r < ring.ownerCount; r++)
      out.push(change(p, r) ?? { member: ring.owner(p, r), state: "ready" as const });
  }
  return out;
}

test("without coordination the table is the ring, every slot ready, with the ring's checksum", (t) => {
  const table = RoutingTable.ready(ring);
  t.false(table.coordinated);
  t.is(table.checksum, ring.checksum);
  t.deepEqual(table.counts, { ready: 32, moving: 0, none: 0 });
  for (let p = 0; p < 16; p++) t.deepEqual(table.routed(p), ring.ownersOfPartition(p));
  t.is(RoutingTable.ready(ring), table, "made once per ring");
});

test("a coordinated table says per slot who, and how; all ready it has the ring's checksum, otherwise its own", (t) => {
  const settled = RoutingTable.coordinated(
    ring,
    slots(() => undefined),
    3,
  );
  t.is(settled.checksum, ring.checksum);
  const moving = RoutingTable.coordinated(
    ring,
    slots((p, r) =>
      p === 2 && r === 0
        ? { member: "z", state: "moving" }
        : p === 5
          ? { member: undefined, state: "none" }
          : undefined,
    ),
    3,
    "120",
  );
  t.not(moving.checksum, ring.checksum);
  t.deepEqual(moving.counts, { ready: 29, moving: 1, none: 2 });
  t.is(moving.member(2, 0), "z");
  t.is(moving.state(2, 0), "moving");
  t.is(moving.member(5, 1), undefined);
  t.deepEqual(moving.routed(5), [], "nobody to send partition 5 to");
  t.deepEqual(moving.routed(2), ["z", ring.owner(2, 1)]);
  t.true(moving.has("z"));
  t.deepEqual(moving.slotsByMember().get("z"), { ready: 0, moving: 1, none: 0 });
  t.is(moving.revision, "120");
  t.is(moving.version, 3);
  const again = RoutingTable.coordinated(
    ring,
    slots((p, r) =>
      p === 2 && r === 0
        ? { member: "z", state: "moving" }
        : p === 5
          ? { member: undefined, state: "none" }
          : undefined,
    ),
    3,
  );
  t.is(again.checksum, moving.checksum, "the same table, the same checksum");
});

test("a table crosses to a worker as plain data and arrives the same; a damaged one is refused", (t) => {
  const table = RoutingTable.coordinated(
    ring,
    slots((p) => (p === 7 ? { member: undefined, state: "none" } : undefined)),
    9,
    "44",
  );
  const message = structuredClone(table.toMessage());
  t.is(message.table[7 * 2], noneReady);
  const arrived = RoutingTable.fromMessage(message);
  t.is(arrived.checksum, table.checksum);
  t.is(arrived.version, 9);
  t.is(arrived.revision, "44");
  t.is(arrived.ring.checksum, ring.checksum);
  for (let p = 0; p < 16; p++) t.deepEqual(arrived.routed(p), table.routed(p));

  const damaged = structuredClone(message);
  damaged.table[0] = (damaged.table[0] as number) === 0 ? 1 : 0;
  t.throws(() => RoutingTable.fromMessage(damaged), { message: /checksum/ });
});
