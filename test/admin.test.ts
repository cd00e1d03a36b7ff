import { request } from "node:http";
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { diff } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { send, startProxy, TestSource } from "./helpers/backends.ts";

const names = ["alpha", "bravo", "charlie"];

/** A proxy with metrics, and its admin server, both on ephemeral ports. */
async function startAll(members = names) {
  let metrics: Metrics | undefined;
  const h = await startProxy(members, {
    observer: {
      request: (...args) => metrics?.request(...args),
      upstreamError: (...args) => metrics?.upstreamError(...args),
      failover: () => metrics?.failover(),
      ejection: (member) => metrics?.ejection(member),
    },
  });
  metrics = new Metrics(h.cluster, { ejected: h.proxy.ejected });
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
    t.is(sample(text, `ringroute_requests_total{member="${member}",code="200",method="GET"}`), count, member);
    t.is(sample(text, `ringroute_request_duration_seconds_count{member="${member}"}`), count);
  }
  t.is(sample(text, `ringroute_requests_total{member="none",code="400",method="GET"}`), 1);
  t.is(sample(text, `ringroute_members{state="alive"}`), 3);
  t.is(sample(text, `ringroute_ring_info{checksum="${ring.checksum}",placement="jump",hash="fnv1a32"}`), 1);
  for (const [member, counts] of ring.loads) {
    for (const [replica, count] of counts.entries()) {
      t.is(sample(text, `ringroute_partitions_owned{member="${member}",replica="${replica}"}`), count);
    }
  }
  t.is(sample(text, `ringroute_membership_source_up{source="test"}`), 1);
  t.is(sample(text, "ringroute_failovers_total"), 0);
  t.regex(text, /^process_cpu_user_seconds_total /m, "default process metrics");
  t.regex(text, /^nodejs_eventloop_lag_seconds /m, "default Node metrics");
  t.notRegex(text, /items/, "no key or path in any label");
});

test("a member that leaves the ring takes its label sets with it", async (t) => {
  const all = await startAll();
  t.teardown(() => all.close());
  for (let i = 0; i < 30; i++) await send(all.h.url, `/x/${i}`);
  const before = (await send(all.admin, "/metrics")).text;
  t.regex(before, /member="charlie"/);
  const before2 = Ring.build(names);
  all.h.source.set(all.h.backends.filter((b) => b.name !== "charlie").map(({ name, url }) => ({ name, url })));
  const after = (await send(all.admin, "/metrics")).text;
  t.notRegex(after, /member="charlie"/);
  t.is(sample(after, "ringroute_ring_changes_total"), 1);
  const moved = diff(before2, Ring.build(["alpha", "bravo"])).filter((e) => e.type === "acquire" && e.from !== null);
  t.is(sample(after, "ringroute_partition_moves_total"), moved.length);
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
    placement: "jump",
    order: "lexical",
    balanceFactor: 1.25,
    vnodes: 150,
    compat: "none",
  });
  t.is(reply.json.cap, null, "jump has no cap");
  t.is(reply.json.table.length, 512);
  for (const p of [0, 1, 255, 511]) t.deepEqual(reply.json.table[p], ring.ownersOfPartition(p));
  const alpha = reply.json.members.find((m: { name: string }) => m.name === "alpha");
  t.like(alpha, { name: "alpha", state: "alive", inRing: true, ejected: false });
  t.deepEqual(alpha.partitions, ring.loads.get("alpha"));
  t.is(alpha.url, all.h.backends[0]?.url);
});

test("/events streams memberUp, acquire, release and ring as Server-Sent Events", async (t) => {
  const all = await startAll(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const { hostname, port } = new URL(all.admin);
  const received: { event: string; data: unknown }[] = [];
  const ringSeen = new Promise<void>((resolve, reject) => {
    const req = request({ host: hostname, port, path: "/events", agent: false }, (res) => {
      t.regex(String(res.headers["content-type"]), /text\/event-stream/);
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        if (buffer.includes(": connected")) {
          buffer = buffer.replace(": connected\n\n", "");
          all.h.source.set([
            ...all.h.backends.map(({ name, url }) => ({ name, url })),
            { name: "charlie", url: "http://127.0.0.1:1" },
          ]);
        }
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined && data !== undefined) received.push({ event, data: JSON.parse(data) });
          if (event === "ring") {
            req.destroy();
            resolve();
          }
          end = buffer.indexOf("\n\n");
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
  await ringSeen;
  const before = Ring.build(["alpha", "bravo"]);
  const after = Ring.build(["alpha", "bravo", "charlie"]);
  const expected = diff(before, after);
  t.deepEqual(received[0], {
    event: "memberUp",
    data: { name: "charlie", url: "http://127.0.0.1:1", state: "alive", tags: {} },
  });
  const partitionEvents = received.filter((e) => e.event === "acquire" || e.event === "release");
  t.is(partitionEvents.length, expected.length);
  t.deepEqual(partitionEvents.map((e) => JSON.stringify(e.data)).sort(), expected.map((e) => JSON.stringify(e)).sort());
  const last = received[received.length - 1];
  t.is(last?.event, "ring");
  t.like(last?.data, { checksum: after.checksum, previousChecksum: before.checksum });
});
