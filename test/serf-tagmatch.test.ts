import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { SerfSource } from "../src/membership/serf/source.ts";
import type { TagMatch } from "../src/membership/serf/tags.ts";
import { SerfAgents } from "./helpers/serf.ts";
import { until } from "./helpers/until.ts";

const agents = new SerfAgents();
test.after.always(() => agents.stopAll());

// libring's own example, against real Serf agents: WatchTags {ring: /active/, zone: /^eu$/}.
test("a Serf source admits libring's example members by the tag rule it is given", async (t) => {
  t.timeout(90_000);
  const gw = await agents.start("gw", { tags: { role: "gateway" } });
  const members: [string, Record<string, string>][] = [
    ["both", { ring: "active", zone: "eu" }],
    ["only-ring-active", { ring: "active" }],
    ["only-zone-eu", { zone: "eu" }],
    ["ring-draining-zone-us", { ring: "draining", zone: "us" }],
  ];
  for (const [i, [name, tags]] of members.entries()) {
    await agents.start(name, { tags: { ...tags, http: `127.0.0.1:${21000 + i}` } });
    await agents.join(name, "gw");
  }
  const watching = (tagMatch: TagMatch) => {
    const source = new SerfSource({ rpc: gw.rpc, tags: { ring: "active", zone: "^eu$" }, tagMatch });
    const cluster = new Cluster({ source });
    t.teardown(() => cluster.stop());
    return cluster;
  };
  const any = watching("any");
  const all = watching("all");
  await Promise.all([any.start(), all.start()]);
  const expected = { any: ["both", "only-ring-active", "only-zone-eu"], all: ["both"] };
  await until(
    () =>
      JSON.stringify(any.ring.members) === JSON.stringify(expected.any) &&
      JSON.stringify(all.ring.members) === JSON.stringify(expected.all),
    { what: `rings ${JSON.stringify(expected)}` },
  ).catch(() => undefined);
  t.deepEqual(any.ring.members, expected.any);
  t.deepEqual(all.ring.members, expected.all);
});
