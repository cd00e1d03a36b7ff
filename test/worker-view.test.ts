import test from "ava";
import { RoutingTable } from "../src/handoff/table.ts";
import type { Member } from "../src/membership/source.ts";
import { Ring } from "../src/ring/ring.ts";
import { routingSnapshot as snapshotOf } from "../src/serving/routing-snapshot.ts";
import { WorkerView } from "../src/serving/workers/view.ts";

/** A snapshot of `ring` with every slot ready, as the primary sends without hand-offs. */
const routingSnapshot = (version: number, ring: Ring, known: Member[]) =>
  snapshotOf(version, RoutingTable.ready(ring), known);

const config = { partitions: 128, replicas: 2, placement: "balanced" as const };
const member = (name: string, state: Member["state"] = "alive", url = `http://${name}.test`): Member => ({
  name,
  url,
  tags: { zone: "z1" },
  state,
});

/** Who the view tells the proxy has left, as lines. */
function record(view: WorkerView): string[] {
  const log: string[] = [];
  view.listen({ memberDown: (m) => log.push(`down ${m.name} ${m.state}`) });
  return log;
}

test("a worker's view routes by the snapshot it is sent, with its version and member records", (t) => {
  const view = new WorkerView();
  t.is(view.version, undefined);
  t.is(view.routing.members.length, 0);
  const ring = Ring.build(["a", "b", "c"], config);
  const applied = view.apply(routingSnapshot(7, ring, [member("a"), member("b"), member("c"), member("d", "failed")]));
  t.is(applied.checksum, ring.checksum);
  t.is(view.version, 7);
  t.is(view.routing.ring.ownerOf("/users/1"), ring.ownerOf("/users/1"));
  t.deepEqual(view.member("d"), member("d", "failed"));
  t.is(view.member("e"), undefined);
});

test("a new snapshot tells the proxy who left, with the state the primary reported", (t) => {
  const view = new WorkerView();
  view.apply(routingSnapshot(0, Ring.build(["a", "b", "c"], config), [member("a"), member("b"), member("c")]));
  const log = record(view);
  view.apply(routingSnapshot(1, Ring.build(["a", "d"], config), [member("a"), member("b", "failed"), member("d")]));
  t.deepEqual(log, ["down b failed", "down c left"]);
});

test("a member's new URL under the same name is routed to, with the same ring", (t) => {
  const view = new WorkerView();
  const ring = Ring.build(["a", "b"], config);
  view.apply(routingSnapshot(0, ring, [member("a"), member("b")]));
  view.apply(routingSnapshot(1, ring, [member("a"), member("b", "alive", "http://b2.test")]));
  t.is(view.member("b")?.url, "http://b2.test");
  t.is(view.version, 1);
});

test("a table that does not fit, or a checksum that differs, is refused and the old routing stays", (t) => {
  const view = new WorkerView();
  const ring = Ring.build(["a", "b"], config);
  view.apply(routingSnapshot(0, ring, [member("a"), member("b")]));
  const broken = routingSnapshot(1, ring, [member("a"), member("b")]);
  t.throws(() => view.apply({ ...broken, routing: { ...broken.routing, table: new Uint32Array(3) } }), {
    instanceOf: RangeError,
  });
  // A table the sender computed another checksum for (another ring, a corrupted message).
  t.throws(() => view.apply({ ...broken, routing: { ...broken.routing, checksum: "0000000000000000" } }), {
    message: /checksum/,
  });
  t.is(view.routing.checksum, ring.checksum);
  t.is(view.version, 0);
});
