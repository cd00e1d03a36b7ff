import { readFileSync } from "node:fs";
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { diff } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { send, startProxy, TestSource } from "./helpers/backends.ts";

const names = ["alpha", "bravo", "charlie"];

/** A proxy with metrics, and its admin server, both on ephemeral ports. */
async function startAll(members = names, ejected?: () => string[]) {
  let metrics: Metrics | undefined;
  const h = await startProxy(members, {
    observer: {
      request: (...args) => metrics?.request(...args),
      upstreamError: (...args) => metrics?.upstreamError(...args),
      failover: () => metrics?.failover(),
      ejection: (member) => metrics?.ejection(member),
    },
  });
  metrics = new Metrics(h.cluster, { ejected: ejected ?? h.proxy.ejected });
  const admin = createAdminServer({ cluster: h.cluster, metrics, ejected: h.proxy.ejected });
  const { port } = await admin.listen(0, "127.0.0.1");
  return {
    h,
    metrics,
    admin: `http://127.0.0.1:${port}`,
    async close() {
      await admin.close();
      metrics?.close();
      await h.close();
    },
  };
}

/** The value of one sample line in Prometheus text, or undefined. */
function sample(text: string, line: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test("/metrics counts requests by serving member and shows the ring, after traffic", async (t) => {
  const all = await startAll();
  t.teardown(() => all.close());
  const ring = Ring.build(names);
  const expected = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    const key = `/items/${i}`;
    t.is((await send(all.h.url, key)).status, 200);
    const owner = ring.ownerOf(key) as string;
    expected.set(owner, (expected.get(owner) ?? 0) + 1);
  }
  await send(all.h.url, "/bad%zz");
  const reply = await send(all.admin, "/metrics");
  t.is(reply.status, 200);
  t.regex(String(reply.headers["content-type"]), /text\/plain/);
  const text = reply.text;
  for (const [member, count] of expected) {
    t.is(
      sample(text, `ringroute_requests_total{member="${member}",code="200",method="GET",protocol="http/1.1"}`),
      count,
      member,
    );
    t.is(sample(text, `ringroute_request_duration_seconds_count{member="${member}"}`), count);
  }
  t.is(sample(text, `ringroute_requests_total{member="none",code="400",method="GET",protocol="http/1.1"}`), 1);
  t.is(sample(text, `ringroute_members{state="alive"}`), 3);
  t.is(sample(text, `ringroute_ring_info{checksum="${ring.checksum}",placement="balanced",hash="fnv1a32"}`), 1);
  for (const [member, counts] of ring.loads) {
    for (const [replica, count] of counts.entries()) {
      t.is(sample(text, `ringroute_partitions_owned{member="${member}",replica="${replica}"}`), count);
    }
  }
  t.is(sample(text, `ringroute_membership_source_up{source="test"}`), 1);
  t.is(sample(text, "ringroute_failovers_total"), 0);
  t.regex(text, /^process_cpu_user_seconds_total /m, "default process metrics");
  t.notRegex(text, /^nodejs_active_handles_total/m, "a gauge named like a counter is dropped");
  t.regex(text, /^nodejs_eventloop_lag_seconds /m, "default Node metrics");
  t.notRegex(text, /items/, "no key or path in any label");
});

test("a member that leaves keeps its counters; its gauges go", async (t) => {
  const all = await startAll();
  t.teardown(() => all.close());
  const ring = Ring.build(names);
  let charlie = 0;
  for (let i = 0; i < 30; i++) {
    await send(all.h.url, `/x/${i}`);
    if (ring.ownerOf(`/x/${i}`) === "charlie") charlie++;
  }
  all.metrics.upstreamError("charlie", "reset");
  const before = (await send(all.admin, "/metrics")).text;
  t.is(sample(before, 'ringroute_member_up{member="charlie"}'), 1);
  all.h.source.set(all.h.backends.filter((b) => b.name !== "charlie").map(({ name, url }) => ({ name, url })));
  const after = (await send(all.admin, "/metrics")).text;
  t.is(
    sample(after, 'ringroute_requests_total{member="charlie",code="200",method="GET",protocol="http/1.1"}'),
    charlie,
  );
  t.is(sample(after, 'ringroute_request_duration_seconds_count{member="charlie"}'), charlie);
  t.is(sample(after, 'ringroute_upstream_errors_total{member="charlie",reason="reset"}'), 1);
  t.is(sample(after, 'ringroute_partitions_owned{member="charlie",replica="0"}'), undefined);
  t.is(sample(after, 'ringroute_member_up{member="charlie"}'), undefined, "gone from the source: no gauge");
  t.is(sample(after, 'ringroute_member_up{member="alpha"}'), 1);
  t.is(sample(after, "ringroute_ring_changes_total"), 1);
  const moved = diff(ring, Ring.build(["alpha", "bravo"])).filter((e) => e.type === "acquire" && e.from !== null);
  t.is(sample(after, "ringroute_partition_moves_total"), moved.length);
});

test("ringroute_member_up is 0 for an ejected member; build_info carries the package version; in-flight follows the observer", async (t) => {
  const all = await startAll(names, () => ["bravo"]);
  t.teardown(() => all.close());
  all.metrics.requestStarted();
  all.metrics.requestStarted();
  all.metrics.requestEnded();
  const text = (await send(all.admin, "/metrics")).text;
  t.is(sample(text, 'ringroute_member_up{member="alpha"}'), 1);
  t.is(sample(text, 'ringroute_member_up{member="bravo"}'), 0);
  t.is(sample(text, "ringroute_requests_in_flight"), 1);
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  t.is(sample(text, `ringroute_build_info{version="${version}"}`), 1);
});

test("/healthz answers while alive; /readyz only once membership has synced and the ring has a member", async (t) => {
  const source = new TestSource([]);
  const cluster = new Cluster({ source });
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  t.teardown(() => admin.close());
  const base = `http://127.0.0.1:${port}`;
  t.is((await send(base, "/healthz")).status, 200);
  t.is((await send(base, "/readyz")).status, 503, "not synced");
  await cluster.start();
  const empty = await send(base, "/readyz");
  t.is(empty.status, 503, "synced, but no member");
  t.is(empty.json.synced, true);
  source.set([{ name: "a", url: "http://127.0.0.1:1" }]);
  t.is((await send(base, "/readyz")).status, 200);
});

test("/ring shows the ring's config, members with state, checksum and table", async (t) => {
  const all = await startAll();
  t.teardown(() => all.close());
  const ring = Ring.build(names);
  const reply = await send(all.admin, "/ring");
  t.is(reply.status, 200);
  t.is(reply.json.checksum, ring.checksum);
  t.deepEqual(reply.json.config, {
    partitions: 512,
    replicas: 3,
    hash: "fnv1a32",
    placement: "balanced",
    order: "lexical",
    balanceFactor: 1.25,
    vnodes: 150,
    compat: "none",
  });
  t.is(reply.json.cap, 213, "the balanced default's cap: ⌊1.25 · 512 / 3⌋");
  t.is(reply.json.table.length, 512);
  for (const p of [0, 1, 255, 511]) t.deepEqual(reply.json.table[p], ring.ownersOfPartition(p));
  const alpha = reply.json.members.find((m: { name: string }) => m.name === "alpha");
  t.like(alpha, { name: "alpha", state: "alive", inRing: true, ejected: false });
  t.deepEqual(alpha.partitions, ring.loads.get("alpha"));
  t.is(alpha.url, all.h.backends[0]?.url);
});
