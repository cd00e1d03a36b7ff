import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { handoffSlots } from "../src/admin/ring-view.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { RoutingTable } from "../src/handoff/table.ts";
import { Ring } from "../src/ring/ring.ts";
import { send, TestSource } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";

const names = ["alpha", "bravo", "charlie", "delta"];

async function startAdmin() {
  const source = new TestSource(names.map((name) => ({ name, url: "http://127.0.0.1:1" })));
  const cluster = new Cluster({ source, ring: { partitions: 1024, replicas: 2, placement: "balanced" } });
  await cluster.start();
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  return {
    base: `http://127.0.0.1:${port}`,
    async close() {
      await admin.close();
      metrics.close();
      await cluster.stop();
    },
  };
}

test("/plan answers what `ringroute plan --json` prints for the same change, plus the partitions that would move", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  const reply = await send(all.base, "/plan?add=echo,foxtrot&remove=bravo");
  t.is(reply.status, 200);
  const cli = await ringroute([
    "plan",
    "--members",
    names.join(","),
    "--partitions",
    "1024",
    "--replicas",
    "2",
    "--placement",
    "balanced",
    "--add",
    "echo,foxtrot",
    "--remove",
    "bravo",
    "--json",
  ]);
  t.is(cli.code, 0, cli.stderr);
  const { movedPartitions, checksum, afterChecksum, ...numbers } = reply.json;
  t.deepEqual(numbers, JSON.parse(cli.stdout));
  const before = Ring.build(names, { partitions: 1024, replicas: 2, placement: "balanced" });
  const after = before.withMembers(["alpha", "charlie", "delta", "echo", "foxtrot"]);
  const expected = [];
  for (let p = 0; p < 1024; p++) if (before.owner(p, 0) !== after.owner(p, 0)) expected.push(p);
  t.deepEqual(movedPartitions, expected);
  t.is(movedPartitions.length, numbers.moved_primaries);
  t.deepEqual([checksum, afterChecksum], [before.checksum, after.checksum]);
});

test("/plan refuses a bad change with a JSON 400 naming the field, and changes nothing", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  const before = (await send(all.base, "/ring?table=false")).json.checksum;
  for (const [query, field] of [
    ["add=alpha", "add"],
    ["remove=zulu", "remove"],
    ["remove=alpha,bravo,charlie,delta", "remove"],
    ["add=x,x", "add"],
  ] as const) {
    const reply = await send(all.base, `/plan?${query}`);
    t.is(reply.status, 400, query);
    t.like(reply.json, { error: "bad_request", field }, query);
  }
  t.is((await send(all.base, "/ring?table=false")).json.checksum, before);
});

test("/partition names a partition's owners in replica order and keys that hash into it; a bad number is a JSON 400", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  const ring = Ring.build(names, { partitions: 1024, replicas: 2, placement: "balanced" });
  for (const p of [0, 517, 1023]) {
    const reply = await send(all.base, `/partition?p=${p}`);
    t.is(reply.status, 200);
    const body = JSON.parse(reply.text) as { partition: number; owners: string[]; examples: string[] };
    t.is(body.partition, p);
    t.deepEqual(body.owners, [...ring.ownersOfPartition(p)]);
    t.is(body.examples.length, 3);
    for (const key of body.examples) t.is(ring.partitionOf(key), p, `${key} lands in ${p}`);
  }
  for (const bad of ["1024", "-1", "x", ""]) {
    const reply = await send(all.base, `/partition?p=${bad}`);
    t.is(reply.status, 400, `p=${bad}`);
    t.like(JSON.parse(reply.text), { error: "bad_request", field: "p" });
  }
});

test("a member in a hand-off is the owner of every slot not ready at it, and the old owner a moving slot is still routed to", (t) => {
  const ring = Ring.build(["a", "b", "c", "d"], { partitions: 256, replicas: 2 });
  t.deepEqual([...handoffSlots(RoutingTable.ready(ring))], [], "no hand-off when every slot is ready");
  const slots = [];
  for (let p = 0; p < 256; p++) {
    for (let r = 0; r < 2; r++) slots.push({ member: ring.owner(p, r), state: "ready" as const });
  }
  slots[0] = { member: undefined, state: "none" as const };
  slots[2] = { member: "x", state: "moving" as const };
  slots[5] = { member: "a", state: "moving" as const };
  const expected = new Map<string, number>();
  const add = (name: string) => expected.set(name, (expected.get(name) ?? 0) + 1);
  for (const name of [ring.owner(0, 0), ring.owner(1, 0), "x", ring.owner(2, 1), "a"]) add(name as string);
  t.deepEqual(Object.fromEntries(handoffSlots(RoutingTable.coordinated(ring, slots, 7))), Object.fromEntries(expected));
});
