/**
 * The routing table against a real etcd: it depends on what etcd holds and
 * nothing else, so a proxy started in the middle of a hand-off routes as
 * the ones that watched it from the start, and proxies at one revision show
 * one routing checksum (on /ring too).
 */
import test from "ava";
import { Readiness } from "../src/admin/readiness.ts";
import { ringJson } from "../src/admin/ring-view.ts";
import { Cluster } from "../src/cluster.ts";
import { EtcdSource, noLeaderReason } from "../src/membership/etcd/source.ts";
import { ManualClock } from "./helpers/clock.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { Nodes, sleep } from "./helpers/etcd-nodes.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { until } from "./helpers/until.ts";

let etcd: EtcdServer;
test.before(async () => {
  etcd = await EtcdServer.start();
});
test.after.always(() => etcd?.stop());

let count = 0;
function nodes(t: { teardown(fn: () => Promise<void>): void }, ring: { partitions: number; replicas: number }): Nodes {
  const n = new Nodes(etcd, `r${++count}`, ring);
  t.teardown(() => n.stopAll());
  return n;
}

test("a proxy started in the middle of a hand-off routes as the proxies that watched it from the start, at every common revision", async (t) => {
  const ring = { partitions: 32, replicas: 2 };
  const n = nodes(t, ring);
  const slow = { release: () => sleep(800).then(() => {}), acquire: () => sleep(200).then(() => {}) };
  const early = await Promise.all([n.observer(), n.observer()]);
  const a = await n.member("a", { handoff: slow });
  await until(() => early.every((p) => p.routing.counts.ready === ring.partitions && p.stableVersion !== undefined), {
    what: "a alone, every slot ready at both proxies",
  });

  await Promise.all([n.member("b", { handoff: slow }), n.member("c", { handoff: slow })]);
  await until(() => (early[0]?.routing.counts.ready ?? 0) < (early[0]?.routing.ranks ?? 0) * ring.partitions, {
    what: "the hand-off under way",
  });
  const late = await n.observer();
  const proxies = [...early, late];

  // Sample until everything is ready again; compare the proxies whenever they are at one revision.
  let compared = 0;
  let midChange = 0;
  const disagreements: string[] = [];
  const done = () => proxies.every((p) => p.routing.counts.moving + p.routing.counts.none === 0 && p.ring.size === 3);
  await until(
    () => {
      const revisions = new Set(proxies.map((p) => p.routing.revision));
      if (revisions.size === 1) {
        compared++;
        const [first] = proxies;
        if ((first?.routing.counts.ready ?? 0) < (first?.routing.ranks ?? 0) * ring.partitions) midChange++;
        const checksums = new Set(proxies.map((p) => p.routing.checksum));
        if (checksums.size !== 1) disagreements.push(`revision ${[...revisions][0]}: ${[...checksums].join(" ")}`);
      }
      return done();
    },
    { what: "every slot ready at all three proxies", interval: 5 },
  );
  t.deepEqual(disagreements, [], "one revision, one routing");
  t.true(midChange > 0, "the proxies were compared while slots were still moving");
  t.log(`${compared} samples at a common revision, ${midChange} of them mid-change`);
  void a;
});

test("proxies at one revision show one routing checksum on /ring, next to the target ring's, with slot counts and the revision", async (t) => {
  const ring = { partitions: 16, replicas: 1 };
  const n = nodes(t, ring);
  const proxies = await Promise.all([n.observer(), n.observer(), n.observer()]);
  await n.member("a", { handoff: { acquire: () => sleep(300).then(() => {}) } });
  await until(() => proxies.every((p) => p.ring.size === 1), { what: "a version with a at every proxy" });
  // While a acquires, nothing is ready: /ring says so, with a routing checksum unlike the ring's.
  const during = proxies.map((p) => ringJson(p) as { checksum: string; routing: Record<string, unknown> });
  for (const view of during) {
    const routing = view.routing as { checksum: string; slots: { ready: number; none: number }; revision: string };
    if (routing.slots.ready < ring.partitions) t.not(routing.checksum, view.checksum);
    t.regex(routing.revision, /^\d+$/);
  }
  await until(
    () => {
      const views = proxies.map((p) => ringJson(p) as { checksum: string; routing: { checksum: string } });
      return views.every((v) => v.routing.checksum === v.checksum);
    },
    { what: "every slot ready: routing checksum = ring checksum at every proxy" },
  );
  const views = proxies.map(
    (p) =>
      ringJson(p) as {
        checksum: string;
        routing: { checksum: string; slots: Record<string, number>; revision: string; version: number };
      },
  );
  t.is(new Set(views.map((v) => `${v.routing.revision} ${v.routing.checksum}`)).size, 1);
  t.deepEqual(views[0]?.routing.slots, { ready: ring.partitions, moving: 0, none: 0 });
  t.is(views[0]?.routing.version, proxies[0]?.version);
});

test("members registered with plain etcdctl under coordinated hand-offs: the proxy says once why no version comes, in the log and /readyz", async (t) => {
  const { logger, entries } = recordingLogger();
  const cluster = `plain${++count}`;
  const lease = await etcd.grant(60);
  const prefix = `/ringroute/${cluster}/`;
  await etcd.ctl("put", "--lease", lease, `${prefix}members/web-1`, JSON.stringify({ url: "http://127.0.0.1:1" }));
  const clock = new ManualClock();
  const source = new EtcdSource({ endpoints: [etcd.endpoint], cluster, logger, clock });
  const proxy = new Cluster({ source, clock });
  await proxy.start();
  t.teardown(() => proxy.stop());
  const readiness = new Readiness(proxy, { clock });
  t.teardown(() => readiness.close());
  await until(() => proxy.synced, { what: "the proxy synced" });
  // A joining member writes its election key right after its member key: silence for 2 s first.
  clock.advance(1999);
  t.is(proxy.coordination?.stalled, undefined);
  t.false(readiness.report().reasons.includes(noLeaderReason));
  clock.advance(1);
  t.is(proxy.coordination?.stalled, noLeaderReason);
  t.true(readiness.report().reasons.includes(noLeaderReason));
  t.like(ringJson(proxy), { routing: { stalled: noLeaderReason } });
  // Another member, still without the protocol: no second log line.
  await etcd.ctl("put", "--lease", lease, `${prefix}members/web-2`, JSON.stringify({ url: "http://127.0.0.1:2" }));
  await until(() => proxy.knownMembers().length === 2, { what: "web-2 seen" });
  clock.advance(5000);
  t.is(entries.filter((e) => e.msg === noLeaderReason).length, 1);
  t.is(
    noLeaderReason,
    "no leader: no member takes part in the election; members registered without the protocol need handoff: immediate",
  );
});
