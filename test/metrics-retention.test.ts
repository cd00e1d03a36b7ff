/**
 * Per-member metric state is dropped `metrics.memberRetention` after a member
 * leaves: until then its counters stay (its last increments are scraped),
 * after it its series disappear, so member-name churn keeps memory flat.
 * Time is a manual clock.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { Cluster } from "../src/cluster.ts";
import { TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";

const member = (name: string) => ({ name, url: `http://127.0.0.1:1/${name}` });
const hour = 3_600_000;

async function setup(names: string[], retention?: number) {
  const source = new TestSource(names.map(member));
  const cluster = new Cluster({ source, ring: { partitions: 16 } });
  await cluster.start();
  const clock = new ManualClock();
  const metrics = new Metrics(cluster, {
    defaultMetrics: false,
    clock,
    ...(retention === undefined ? {} : { memberRetention: retention }),
  });
  /** Everything `name` has in the exposition: the lines that carry its member label. */
  const series = async (name: string) =>
    (await metrics.text()).split("\n").filter((line) => line.includes(`member="${name}"`) && !line.startsWith("#"));
  const traffic = (name: string) => {
    metrics.request(name, "GET", 200, 0.01);
    metrics.upstreamError(name, "reset");
    metrics.ejection(name);
  };
  return { source, cluster, clock, metrics, series, traffic };
}

/** The labelled counters and histograms a member with traffic has: requests, duration (16 buckets, sum, count), errors, ejections. */
const perMember = (lines: string[]) =>
  lines.filter((l) => !l.startsWith("ringroute_member_up") && !l.startsWith("ringroute_partitions_owned"));

test("a departed member's series stay for the default hour, then disappear; others are untouched", async (t) => {
  const { source, clock, metrics, series, traffic, cluster } = await setup(["a", "b"]);
  t.teardown(() => cluster.stop());
  traffic("a");
  traffic("b");
  const before = perMember(await series("a"));
  t.true(
    before.some((l) =>
      l.startsWith('ringroute_requests_total{member="a",code="200",method="GET",protocol="http/1.1"} 1'),
    ),
  );
  t.true(before.some((l) => l.startsWith('ringroute_upstream_errors_total{member="a",reason="reset"} 1')));
  t.true(before.some((l) => l.startsWith('ringroute_ejections_total{member="a"} 1')));

  source.set([member("b")]);
  // A request still in flight when the member left is counted too.
  metrics.request("a", "GET", 200, 0.01);
  await clock.tick(hour - 1);
  const kept = perMember(await series("a"));
  t.is(kept.length, before.length, "every series is still there just before the retention ends");
  t.true(
    kept.some((l) =>
      l.startsWith('ringroute_requests_total{member="a",code="200",method="GET",protocol="http/1.1"} 2'),
    ),
  );
  t.true(metrics.memberTotals().has("a"));

  await clock.tick(1);
  t.deepEqual(await series("a"), [], "no series of a after the retention");
  t.false(metrics.memberTotals().has("a"));
  t.deepEqual(
    perMember(await series("b")),
    before.map((l) => l.replaceAll('member="a"', 'member="b"')),
  );
});

test("a member that comes back within the retention keeps its counters: no reset", async (t) => {
  const { source, clock, series, traffic, cluster } = await setup(["a", "b"], 60_000);
  t.teardown(() => cluster.stop());
  traffic("a");
  source.set([member("b")]);
  await clock.tick(30_000);
  source.set([member("a"), member("b")]);
  traffic("a");
  await clock.tick(10 * 60_000);
  const lines = perMember(await series("a"));
  t.true(
    lines.some((l) =>
      l.startsWith('ringroute_requests_total{member="a",code="200",method="GET",protocol="http/1.1"} 2'),
    ),
  );
  t.true(lines.some((l) => l.startsWith('ringroute_upstream_errors_total{member="a",reason="reset"} 2')));
  // Leaving again starts a new retention from then.
  source.set([member("b")]);
  await clock.tick(59_999);
  t.not(perMember(await series("a")).length, 0);
  await clock.tick(1);
  t.deepEqual(await series("a"), []);
});

test("metrics.memberRetention: 0 drops a member's series at the first scrape after it left", async (t) => {
  const { source, series, traffic, cluster } = await setup(["a", "b"], 0);
  t.teardown(() => cluster.stop());
  traffic("a");
  source.set([member("b")]);
  t.deepEqual(await series("a"), []);
});

/** Heap in use after a full collection. */
function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test("100,000 member names churning through keep memory flat", async (t) => {
  // A roll-out a second, pods with new names each time, a retention of 10 minutes: at most ~600 departed members kept.
  const { source, clock, metrics, traffic, cluster } = await setup(["pod-0", "stable"], 600_000);
  t.teardown(() => cluster.stop());
  const total = 100_000;
  let heapAt20k = 0;
  for (let i = 1; i <= total; i++) {
    source.set([member(`pod-${i}`), member("stable")]);
    traffic(`pod-${i}`);
    traffic("stable");
    clock.advance(1_000);
    if (i === 20_000) {
      await metrics.text();
      heapAt20k = heapAfterGc();
    }
  }
  const text = await metrics.text();
  const growth = (heapAfterGc() - heapAt20k) / 2 ** 20;
  const names = new Set([...text.matchAll(/member="([^"]+)"/g)].map((m) => m[1]));
  t.log(`heap growth from 20,000 to 100,000 names: ${growth.toFixed(1)} MB; member labels in a scrape: ${names.size}`);
  t.true(names.size <= 602, `${names.size} member labels`);
  t.true(names.has("stable") && names.has(`pod-${total}`));
  t.true(growth < 8, `heap grew by ${growth.toFixed(1)} MB`);
});
