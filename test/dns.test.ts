import { createSocket } from "node:dgram";
import { once } from "node:events";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { type DnsConfig, DnsSource, parseDnsConfig } from "../src/membership/dns.ts";
import { type DnsEvent, type DnsRules, type DnsState, firstDns, nextDns } from "../src/membership/dns-state.ts";
import type { Member, MembershipSource, SnapshotSink } from "../src/membership/source.ts";
import { movement } from "../src/ring/diff.ts";
import { Ring, type RingConfig } from "../src/ring/ring.ts";
import { ManualClock } from "./helpers/clock.ts";
import { Dnsmasq, type SrvRecord, zone } from "./helpers/dnsmasq.ts";
import { member } from "./helpers/source.ts";
import { until } from "./helpers/until.ts";

// ---------------------------------------------------------------------------
// The rules, table by table.

const rules: DnsRules = { interval: 5000, emptyAfter: 3 };
const members = (...names: string[]): DnsEvent => ({ type: "answer", members: names.map((n) => member(n)) });
const nxdomain: DnsEvent = { type: "answer", members: [], cause: Object.assign(new Error("x"), { code: "ENOTFOUND" }) };
const refused: DnsEvent = { type: "failed", error: new Error("ECONNREFUSED") };
const due: DnsEvent = { type: "due" };

/** Runs answers (each followed by the next poll falling due) from the first lookup; one line per answer. */
function run(answers: DnsEvent[], r: DnsRules = rules): string[] {
  let { state } = firstDns();
  const lines: string[] = [];
  for (const answer of answers) {
    const step = nextDns(state, answer, r);
    lines.push(
      step.actions
        .map((a) =>
          a.type === "snapshot"
            ? `snapshot(${a.members.map((m) => m.name).join(",")})`
            : a.type === "doubt"
              ? `doubt ${a.streak}`
              : a.type === "schedule"
                ? `next in ${a.delay}`
                : a.type,
        )
        .join(", "),
    );
    const next = nextDns(step.state, due, r);
    state = next.state;
    if (next.actions.length !== 1 || next.actions[0]?.type !== "lookup") throw new Error("a due poll must look up");
  }
  return lines;
}

test("rules: every answer is reported and the next lookup comes an interval after it", (t) => {
  t.deepEqual(run([members("a", "b"), members("a"), refused, members("a")]), [
    "snapshot(a,b), next in 5000",
    "snapshot(a), next in 5000",
    "down, next in 5000",
    "snapshot(a), next in 5000",
  ]);
});

test("rules: an empty answer after members is doubted until emptyAfter in a row", (t) => {
  t.deepEqual(run([members("a"), nxdomain, nxdomain, nxdomain, nxdomain]), [
    "snapshot(a), next in 5000",
    "doubt 1, next in 5000",
    "doubt 2, next in 5000",
    "snapshot(), next in 5000",
    "snapshot(), next in 5000",
  ]);
});

test("rules: the streak starts over after an answer with members; failures neither count nor break it", (t) => {
  t.deepEqual(run([members("a"), nxdomain, refused, nxdomain, members("a"), nxdomain]).slice(1), [
    "doubt 1, next in 5000",
    "down, next in 5000",
    "doubt 2, next in 5000",
    "snapshot(a), next in 5000",
    "doubt 1, next in 5000",
  ]);
});

test("rules: a name that never had records is empty at once; emptyAfter 1 believes the first empty answer", (t) => {
  t.deepEqual(run([nxdomain]), ["snapshot(), next in 5000"]);
  t.deepEqual(run([members("a"), nxdomain], { ...rules, emptyAfter: 1 }).at(-1), "snapshot(), next in 5000");
});

test("rules: lookups never overlap; an answer nobody asked for changes nothing", (t) => {
  const { state } = firstDns();
  t.deepEqual(nextDns(state, due, rules), { state, actions: [] });
  const idle: DnsState = { ...state, looking: false };
  t.deepEqual(nextDns(idle, members("a"), rules), { state: idle, actions: [] });
});

// ---------------------------------------------------------------------------
// The source against a real dnsmasq, polls driven by a manual clock.

const interval = 5000;
// The query timeout is real time (c-ares' own) and generous, so a loaded machine never turns an
// answer into a timeout; polls are driven by a manual clock and cost no waiting.
const fast = { interval, timeout: 10_000, tries: 1, scheme: "http", emptyAfter: 3 } as const;
const srvName = `_http._tcp.web.${zone}`;

/** A StatefulSet's pods web-0 … web-(n-1) behind a headless Service, as SRV records. */
function statefulSet(n: number, port = 8080): SrvRecord[] {
  return Array.from({ length: n }, (_, i) => ({ name: srvName, target: `web-${i}.web.${zone}`, port }));
}

type Report = { snapshot: Member[] } | { down: Error };

/** A sink that records every report. */
class RecordingSink implements SnapshotSink {
  readonly reports: Report[] = [];
  snapshot(members: readonly Member[]): void {
    this.reports.push({ snapshot: [...members] });
  }
  down(error: Error): void {
    this.reports.push({ down: error });
  }
  get last(): string {
    const report = this.reports.at(-1);
    return report === undefined ? "nothing" : describe(report);
  }
}

function describe(report: Report): string {
  return "down" in report ? `down(${report.down.message})` : `snapshot(${names(report.snapshot).join(",")})`;
}

function names(members: readonly Member[]): string[] {
  return members.map((m) => m.name).sort();
}

const isDown = (report: Report): report is { down: Error } => "down" in report;

function config(server: Dnsmasq | string, overrides: Partial<DnsConfig> & Pick<DnsConfig, "name">): DnsConfig {
  return {
    type: "SRV",
    ...fast,
    server: typeof server === "string" ? server : server.server,
    ...overrides,
  };
}

/** Counts what a source reports to whoever started it: every lookup reports once. */
function counted(source: MembershipSource): { source: MembershipSource; reports: () => number } {
  let reports = 0;
  return {
    reports: () => reports,
    source: {
      kind: source.kind,
      start: (sink) =>
        source.start({
          snapshot: (m) => {
            reports++;
            sink.snapshot(m);
          },
          down: (e) => {
            reports++;
            sink.down(e);
          },
        }),
      stop: () => source.stop(),
    },
  };
}

/** Moves the clock to the next poll and waits for its report (real DNS, real time, 30 s deadline). */
async function poll(clock: ManualClock, reports: () => number): Promise<void> {
  const before = reports();
  await clock.run(interval);
  await until(() => reports() > before, { what: "the next poll's report" });
}

/** A DnsSource on a manual clock reporting to a RecordingSink. */
async function polled(t: { teardown(fn: () => unknown): void }, dnsConfig: DnsConfig) {
  const clock = new ManualClock();
  const sink = new RecordingSink();
  const source = new DnsSource(dnsConfig, { clock });
  t.teardown(() => source.stop());
  await source.start(sink);
  return { clock, sink, source, poll: () => poll(clock, () => sink.reports.length) };
}

test("SRV targets become members named by host, with the record's port, in natural ring order", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(11, 8081) });
  const source = new DnsSource(config(dns, { name: srvName }), { clock: new ManualClock() });
  const cluster = new Cluster({ source, ring: { partitions: 256, replicas: 2, order: "natural" } });
  t.teardown(() => Promise.all([cluster.stop(), dns.stop()]));
  await cluster.start();

  t.true(cluster.synced, cluster.sourceState.lastError);
  // Written out by hand: the order a StatefulSet grows in.
  t.deepEqual(
    [...cluster.ring.members],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => `web-${i}.web.${zone}`),
  );
  const web10 = cluster.member(`web-10.web.${zone}`);
  t.is(web10?.url, `http://web-10.web.${zone}:8081`);
  t.is(web10?.state, "alive");
  t.is(web10?.tags.port, "8081");
});

test("scaling a StatefulSet up and down moves only the optimal 1/(n+1) partitions with natural order", async (t) => {
  const ringConfig: Partial<RingConfig> = { partitions: 512, replicas: 3, placement: "jump", order: "natural" };
  const dns = await Dnsmasq.start({ srv: statefulSet(10) });
  const clock = new ManualClock();
  const { source, reports } = counted(new DnsSource(config(dns, { name: srvName }), { clock }));
  const cluster = new Cluster({ source, ring: ringConfig });
  t.teardown(() => Promise.all([cluster.stop(), dns.stop()]));
  const acquiredPrimaries: string[] = [];
  cluster.listen({ acquire: (e) => e.replica === 0 && acquiredPrimaries.push(e.member) });
  await cluster.start();
  acquiredPrimaries.length = 0; // the first snapshot fills the empty ring: every primary is acquired
  const ten = Ring.build(
    statefulSet(10).map((r) => r.target),
    ringConfig,
  );
  t.is(cluster.ring.checksum, ten.checksum);

  await dns.setRecords({ srv: statefulSet(11) }); // web-10 joins
  await poll(clock, reports);
  t.is(cluster.size, 11);
  const eleven = Ring.build(
    statefulSet(11).map((r) => r.target),
    ringConfig,
  );
  t.is(cluster.ring.checksum, eleven.checksum);
  const web10Primaries = eleven.loads.get(`web-10.web.${zone}`)?.[0] as number;
  // Only the newcomer takes primaries, exactly those the new ring gives it: about P/11.
  t.deepEqual(
    acquiredPrimaries,
    Array.from({ length: web10Primaries }, () => `web-10.web.${zone}`),
  );
  t.is(movement(ten, eleven).primaries, web10Primaries);
  t.true(Math.abs(web10Primaries - 512 / 11) < 512 / 11 / 2, `web-10 took ${web10Primaries} of 512`);

  // The same names in lexical order put web-10 between web-1 and web-2, and far more moves.
  const lexical = { ...ringConfig, order: "lexical" } as const;
  const lexicalMoved = movement(
    Ring.build(
      statefulSet(10).map((r) => r.target),
      lexical,
    ),
    Ring.build(
      statefulSet(11).map((r) => r.target),
      lexical,
    ),
  ).primaries;
  t.true(lexicalMoved > 2 * web10Primaries, `lexical moved ${lexicalMoved}, natural ${web10Primaries}`);

  acquiredPrimaries.length = 0;
  await dns.setRecords({ srv: statefulSet(10) }); // scale down: web-10 goes
  await poll(clock, reports);
  t.is(cluster.size, 10);
  t.is(cluster.ring.checksum, ten.checksum, "scale down restores the 10-member ring exactly");
  t.is(acquiredPrimaries.length, web10Primaries, "only web-10's primaries move back");
});

test("A records become members named ip:port, with the configured port", async (t) => {
  const dns = await Dnsmasq.start({ hosts: { [`web.${zone}`]: ["127.0.0.11", "127.0.0.12"] } });
  t.teardown(() => dns.stop());
  const { sink } = await polled(t, config(dns, { name: `web.${zone}`, type: "A", port: 9100 }));
  t.is(sink.reports.length, 1, "the first lookup reports before start resolves");
  const members = (sink.reports[0] as { snapshot: Member[] }).snapshot.sort((a, b) => a.name.localeCompare(b.name));
  t.deepEqual(
    members.map(({ name, url, state }) => ({ name, url, state })),
    [
      { name: "127.0.0.11:9100", url: "http://127.0.0.11:9100", state: "alive" },
      { name: "127.0.0.12:9100", url: "http://127.0.0.12:9100", state: "alive" },
    ],
  );
});

test("AAAA records become members named [ip]:port, with bracketed URLs", async (t) => {
  const dns = await Dnsmasq.start({ hosts: { [`web6.${zone}`]: ["fd00::1", "fd00::2"] } });
  t.teardown(() => dns.stop());
  const { sink } = await polled(t, config(dns, { name: `web6.${zone}`, type: "AAAA", port: 8080, scheme: "https" }));
  t.is(sink.last, "snapshot([fd00::1]:8080,[fd00::2]:8080)");
  const report = sink.reports[0] as { snapshot: Member[] };
  t.deepEqual(report.snapshot.map((m) => m.url).sort(), ["https://[fd00::1]:8080", "https://[fd00::2]:8080"]);
});

test("a record change shows in the next poll, not before", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  t.teardown(() => dns.stop());
  const { clock, sink, poll } = await polled(t, config(dns, { name, type: "A", port: 80 }));
  t.is(sink.last, "snapshot(127.0.0.11:80)");
  await dns.setRecords({ hosts: { [name]: ["127.0.0.11", "127.0.0.13"] } }); // rewrite + SIGHUP
  await clock.run(interval - 1);
  t.is(sink.reports.length, 1, "no lookup before the interval is up");
  await poll();
  t.is(sink.last, "snapshot(127.0.0.11:80,127.0.0.13:80)");
  t.is(sink.reports.length, 2);
});

test("an unreachable server reports down and keeps the last view, then recovers by itself", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(3) });
  const clock = new ManualClock();
  const { source, reports } = counted(new DnsSource(config(dns, { name: srvName }), { clock }));
  const cluster = new Cluster({ source, ring: { order: "natural" }, clock });
  const sourceEvents: boolean[] = [];
  cluster.listen({ source: (up) => sourceEvents.push(up) });
  t.teardown(() => Promise.all([cluster.stop(), dns.stop()]));
  await cluster.start();
  const before = cluster.ring.checksum;
  t.is(cluster.size, 3);

  await dns.kill(); // nothing listens on the port: ECONNREFUSED
  await poll(clock, reports);
  t.false(cluster.sourceUp);
  t.deepEqual(cluster.sourceState, {
    up: false,
    since: clock.now(),
    lastError: `dns SRV ${srvName} via ${dns.server}: ECONNREFUSED`,
  });
  t.is(cluster.ring.checksum, before, "the ring keeps its last good state");
  await poll(clock, reports);
  t.false(cluster.sourceUp, "still down; polling goes on");

  await dns.restart();
  await poll(clock, reports);
  t.true(cluster.sourceUp);
  t.is(cluster.ring.checksum, before);
  t.deepEqual(sourceEvents, [true, false, true]);
});

test("a server that never answers times out: down reported, no snapshot", async (t) => {
  // A bound UDP socket that reads queries and answers nothing.
  const silent = createSocket("udp4");
  silent.on("message", () => {});
  silent.bind(0, "127.0.0.1");
  await once(silent, "listening");
  t.teardown(() => silent.close());
  const { sink, poll } = await polled(t, config(`127.0.0.1:${silent.address().port}`, { name: srvName, timeout: 100 }));
  await poll();
  t.is(sink.reports.length, 2);
  t.true(sink.reports.every(isDown));
  t.regex((sink.reports[0] as { down: Error }).down.message, /ETIMEOUT/);
  t.regex((sink.reports[0] as { down: Error }).down.message, new RegExp(srvName.replaceAll(".", "\\.")));
});

test("nothing listening at start: down, never an empty snapshot", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(1) });
  const server = dns.server;
  await dns.stop(); // the port is now closed
  const { sink, poll } = await polled(t, config(server, { name: srvName }));
  await poll();
  await poll();
  t.is(sink.reports.length, 3);
  t.true(sink.reports.every(isDown), sink.reports.map(describe).join(" "));
  t.regex((sink.reports[0] as { down: Error }).down.message, /ECONNREFUSED/);
});

test("NXDOMAIN for a name that had records empties the view only on the emptyAfter-th answer in a row", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  t.teardown(() => dns.stop());
  const { sink, poll } = await polled(t, config(dns, { name, type: "A", port: 80, emptyAfter: 3 }));
  await dns.setRecords({ hosts: {} }); // the name is gone: NXDOMAIN
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    await poll();
    seen.push(sink.last);
  }
  t.deepEqual(seen, [
    `down(dns A ${name}: ENOTFOUND, 1 of 3 before the view empties)`,
    `down(dns A ${name}: ENOTFOUND, 2 of 3 before the view empties)`,
    "snapshot()",
    "snapshot()",
  ]);
});

test("an NXDOMAIN streak shorter than emptyAfter leaves the view as it was, and starts over", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  t.teardown(() => dns.stop());
  const { sink, poll } = await polled(t, config(dns, { name, type: "A", port: 80, emptyAfter: 3 }));
  await dns.setRecords({ hosts: {} });
  await poll();
  await poll();
  t.is(sink.last, `down(dns A ${name}: ENOTFOUND, 2 of 3 before the view empties)`);
  await dns.setRecords({ hosts: { [name]: ["127.0.0.11"] } });
  await poll();
  t.is(sink.last, "snapshot(127.0.0.11:80)");
  t.false(
    sink.reports.some((r) => describe(r) === "snapshot()"),
    "never reported empty",
  );
  await dns.setRecords({ hosts: {} });
  await poll();
  t.is(sink.last, `down(dns A ${name}: ENOTFOUND, 1 of 3 before the view empties)`);
});

test("a name that never had records is an empty membership straight away", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(1) });
  t.teardown(() => dns.stop());
  const dnsConfig = config(dns, { name: `_http._tcp.nothing.${zone}` });
  const { sink } = await polled(t, dnsConfig);
  t.is(sink.last, "snapshot()");
  const cluster = new Cluster({ source: new DnsSource(dnsConfig, { clock: new ManualClock() }) });
  t.teardown(() => cluster.stop());
  await cluster.start();
  t.true(cluster.synced);
  t.is(cluster.size, 0);
});

test("stop ends polling: no timer left, no reports afterwards", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(2) });
  t.teardown(() => dns.stop());
  const { clock, sink, source, poll } = await polled(t, config(dns, { name: srvName }));
  await poll();
  await source.stop();
  await source.stop(); // idempotent
  t.is(clock.pending, 0);
  await clock.run(interval * 4);
  t.is(sink.reports.length, 2);
});

test("parseDnsConfig fills defaults and reads durations", (t) => {
  t.deepEqual(parseDnsConfig({ name: "_http._tcp.web.default.svc.cluster.local" }), {
    name: "_http._tcp.web.default.svc.cluster.local",
    type: "SRV",
    interval: 5000,
    timeout: 2000,
    tries: 2,
    scheme: "http",
    emptyAfter: 3,
  });
  t.deepEqual(
    parseDnsConfig({
      name: "web",
      type: "aaaa",
      port: 8080,
      interval: "500ms",
      timeout: "1.5s",
      server: "[::1]:5353",
      scheme: "https",
      emptyAfter: 5,
      tries: 1,
    }),
    {
      name: "web",
      type: "AAAA",
      port: 8080,
      interval: 500,
      timeout: 1500,
      tries: 1,
      server: "[::1]:5353",
      scheme: "https",
      emptyAfter: 5,
    },
  );
  t.is(parseDnsConfig({ name: "x", interval: "2m" }).interval, 120_000);
  t.is(parseDnsConfig({ name: "x", interval: "250ms" }).interval, 250);
  t.throws(() => parseDnsConfig({ name: "x", interval: 250 }), {
    message: /membership.dns.interval: must be a positive duration/,
  });
});

test("parseDnsConfig names the field that is wrong", (t) => {
  const cases: [unknown, string][] = [
    [null, "membership.dns: must be a mapping"],
    [{}, "membership.dns.name: "],
    [{ name: "x", type: "MX" }, "membership.dns.type: "],
    [{ name: "x", type: "A" }, "membership.dns.port: is required for type A"],
    [{ name: "x", port: 70000 }, "membership.dns.port: "],
    [{ name: "x", interval: "5 minutes" }, "membership.dns.interval: "],
    [{ name: "x", timeout: 0 }, "membership.dns.timeout: "],
    [{ name: "x", emptyAfter: 0 }, "membership.dns.emptyAfter: "],
    [{ name: "x", tries: 1.5 }, "membership.dns.tries: "],
    [{ name: "x", scheme: "ftp" }, "membership.dns.scheme: "],
    [{ name: "x", server: "not a server" }, "membership.dns.server: "],
    [{ name: "x", ttl: 5 }, "membership.dns.ttl: unknown field"],
  ];
  for (const [raw, message] of cases) {
    const error = t.throws(() => parseDnsConfig(raw), { instanceOf: ConfigError }, JSON.stringify(raw));
    t.true(error?.message.startsWith(message), `${error?.message} should start with ${message}`);
  }
  t.is(t.throws(() => parseDnsConfig({ name: "x", port: 0 }, "sources[2]"))?.message.split(":")[0], "sources[2].port");
});
