import test from "ava";
import type { Member } from "../src/membership/source.ts";
import { Ring } from "../src/ring/ring.ts";
import { ringMessage, WorkerView } from "../src/workers/view.ts";

const config = { partitions: 128, replicas: 2, placement: "balanced" as const };
const member = (name: string, state: Member["state"] = "alive"): Member => ({
  name,
  url: `http://${name}.test`,
  tags: { zone: "z1" },
  state,
});

/** A view's events as lines. */
function record(view: WorkerView): string[] {
  const log: string[] = [];
  view.listen({
    memberUp: (m) => log.push(`up ${m.name}`),
    memberDown: (m) => log.push(`down ${m.name} ${m.state}`),
    ring: (ring, previous) => log.push(`ring ${previous.members.join(",")} -> ${ring.members.join(",")}`),
  });
  return log;
}

test("a worker's view routes by the table it is sent, with the sender's checksum and member records", (t) => {
  const view = new WorkerView();
  const log = record(view);
  t.is(view.size, 0);
  const ring = Ring.build(["a", "b", "c"], config);
  const applied = view.apply(ringMessage(ring, [member("a"), member("b"), member("c"), member("d", "failed")]));
  t.is(applied.checksum, ring.checksum);
  t.is(view.routing.checksum, ring.checksum);
  t.is(view.routing.ring.ownerOf("/users/1"), ring.ownerOf("/users/1"));
  t.deepEqual(view.member("d"), member("d", "failed"));
  t.is(view.member("e"), undefined);
  t.deepEqual(log, ["up a", "up b", "up c", "ring  -> a,b,c"]);
});

test("a new ring tells the proxy who left, with the state the primary reported", (t) => {
  const view = new WorkerView();
  view.apply(ringMessage(Ring.build(["a", "b", "c"], config), [member("a"), member("b"), member("c")]));
  const log = record(view);
  view.apply(ringMessage(Ring.build(["a", "d"], config), [member("a"), member("b", "failed"), member("d")]));
  t.deepEqual(log, ["down b failed", "down c left", "up d", "ring a,b,c -> a,d"]);
  view.apply(ringMessage(Ring.build(["a", "d"], config), [member("a"), member("d")]));
  t.is(log.length, 4, "the same ring again: no events");
});

test("a table that does not fit is refused and the old ring stays", (t) => {
  const view = new WorkerView();
  const ring = Ring.build(["a", "b"], config);
  view.apply(ringMessage(ring, [member("a"), member("b")]));
  const broken = { ...ringMessage(ring, [member("a"), member("b")]), table: new Uint32Array(3) };
  t.throws(() => view.apply(broken), { instanceOf: RangeError });
  t.is(view.routing.checksum, ring.checksum);
});
