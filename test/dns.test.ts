import { createSocket } from "node:dgram";
import { once } from "node:events";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { type DnsConfig, DnsSource, parseDnsConfig } from "../src/membership/dns.ts";
import type { Member, SnapshotSink } from "../src/membership/source.ts";
import { movement } from "../src/ring/diff.ts";
import { Ring, type RingConfig } from "../src/ring/ring.ts";
import { Dnsmasq, type SrvRecord, until, zone } from "./helpers/dnsmasq.ts";

// Short intervals keep the file fast; behaviour is counted in polls, never timed.
const fast = { interval: 50, timeout: 1000, tries: 1, scheme: "http", emptyAfter: 3 } as const;
const srvName = `_http._tcp.web.${zone}`;

/** A StatefulSet's pods web-0 … web-(n-1) behind a headless Service, as SRV records. */
function statefulSet(n: number, port = 8080): SrvRecord[] {
  return Array.from({ length: n }, (_, i) => ({ name: srvName, target: `web-${i}.web.${zone}`, port }));
}

type Report = { snapshot: Member[] } | { down: Error };

/** A sink that records every report, for waiting on the next one and counting. */
class RecordingSink implements SnapshotSink {
  readonly reports: Report[] = [];
  snapshot(members: readonly Member[]): void {
    this.reports.push({ snapshot: [...members] });
  }
  down(error: Error): void {
    this.reports.push({ down: error });
  }
  /** Waits for a report after index `from` that `match` accepts; returns its index. */
  async next(match: (report: Report) => boolean, from = this.reports.length): Promise<number> {
    let found = -1;
    await until(
      () => {
        found = this.reports.findIndex((r, i) => i >= from && match(r));
        return found >= 0;
      },
      () => `no matching report; got ${JSON.stringify(this.reports.slice(from).map(describe))}`,
    );
    return found;
  }
}

function describe(report: Report): string {
  return "down" in report ? `down(${report.down.message})` : `snapshot(${names(report.snapshot).join(",")})`;
}

function names(members: readonly Member[]): string[] {
  return members.map((m) => m.name).sort();
}

const isSnapshotOf =
  (expected: string[]) =>
  (report: Report): boolean =>
    "snapshot" in report && JSON.stringify(names(report.snapshot)) === JSON.stringify([...expected].sort());
const isDown = (report: Report): report is { down: Error } => "down" in report;

function config(server: Dnsmasq | string, overrides: Partial<DnsConfig> & Pick<DnsConfig, "name">): DnsConfig {
  return {
    type: "SRV",
    ...fast,
    server: typeof server === "string" ? server : server.server,
    ...overrides,
  };
}

test("SRV targets become members named by host, with the record's port, in natural ring order", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(11, 8081) });
  const source = new DnsSource(config(dns, { name: srvName }));
  const cluster = new Cluster({ source, ring: { partitions: 256, replicas: 2, order: "natural" } });
  t.teardown(() => Promise.all([cluster.stop(), dns.stop()]));
  await cluster.start();

  t.true(cluster.synced);
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
  const source = new DnsSource(config(dns, { name: srvName }));
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
  await until(
    () => cluster.size === 11,
    () => "web-10 never joined",
  );
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
  await until(
    () => cluster.size === 10,
    () => "web-10 never left",
  );
  t.is(cluster.ring.checksum, ten.checksum, "scale down restores the 10-member ring exactly");
  t.is(acquiredPrimaries.length, web10Primaries, "only web-10's primaries move back");
});

test("A records become members named ip:port, with the configured port", async (t) => {
  const dns = await Dnsmasq.start({ hosts: { [`web.${zone}`]: ["127.0.0.11", "127.0.0.12"] } });
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name: `web.${zone}`, type: "A", port: 9100 }));
  t.teardown(() => Promise.all([source.stop(), dns.stop()]));
  await source.start(sink);

  const first = sink.reports[0];
  t.true(first !== undefined && "snapshot" in first, "the first lookup reports before start resolves");
  const members = (first as { snapshot: Member[] }).snapshot.sort((a, b) => a.name.localeCompare(b.name));
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
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name: `web6.${zone}`, type: "AAAA", port: 8080, scheme: "https" }));
  t.teardown(() => Promise.all([source.stop(), dns.stop()]));
  await source.start(sink);

  await sink.next(isSnapshotOf(["[fd00::1]:8080", "[fd00::2]:8080"]), 0);
  const report = sink.reports[0] as { snapshot: Member[] };
  t.deepEqual(report.snapshot.map((m) => m.url).sort(), ["https://[fd00::1]:8080", "https://[fd00::2]:8080"]);
});

test("a record change shows in the first lookup made after it", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name, type: "A", port: 80 }));
  t.teardown(() => Promise.all([source.stop(), dns.stop()]));
  await source.start(sink);
  await sink.next(isSnapshotOf(["127.0.0.11:80"]), 0);

  await dns.setRecords({ hosts: { [name]: ["127.0.0.11", "127.0.0.13"] } }); // rewrite + SIGHUP
  const changedAt = sink.reports.length;
  // The first report after the change may come from a lookup already under way;
  // polls never overlap, so the second one was asked after the change.
  const newView = isSnapshotOf(["127.0.0.11:80", "127.0.0.13:80"]);
  const seen = await sink.next((r) => "snapshot" in r, changedAt + 1);
  t.true(newView(sink.reports[seen] as Report), describe(sink.reports[seen] as Report));
});

test("an unreachable server reports down and keeps the last view, then recovers", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(3) });
  const source = new DnsSource(config(dns, { name: srvName }));
  const cluster = new Cluster({ source, ring: { order: "natural" } });
  const sourceEvents: boolean[] = [];
  cluster.listen({ source: (up) => sourceEvents.push(up) });
  t.teardown(() => Promise.all([cluster.stop(), dns.stop()]));
  await cluster.start();
  const before = cluster.ring.checksum;
  t.is(cluster.size, 3);

  await dns.kill(); // nothing listens on the port: ECONNREFUSED
  await until(
    () => !cluster.sourceUp,
    () => "source never reported down",
  );
  t.is(cluster.ring.checksum, before, "the ring keeps its last good state");
  t.is(cluster.size, 3);

  await dns.restart();
  await until(
    () => cluster.sourceUp,
    () => "source never came back",
  );
  t.is(cluster.ring.checksum, before);
  t.deepEqual(sourceEvents, [true, false, true]);
});

test("a server that never answers times out: down reported, no snapshot", async (t) => {
  // A bound UDP socket that reads queries and answers nothing.
  const silent = createSocket("udp4");
  silent.on("message", () => {});
  silent.bind(0, "127.0.0.1");
  await once(silent, "listening");
  const sink = new RecordingSink();
  const source = new DnsSource(config(`127.0.0.1:${silent.address().port}`, { name: srvName, timeout: 100 }));
  t.teardown(async () => {
    await source.stop();
    silent.close();
  });
  await source.start(sink);
  await sink.next(() => true, 1); // a second poll, too

  t.true(sink.reports.every(isDown));
  t.regex((sink.reports[0] as { down: Error }).down.message, /ETIMEOUT/);
  t.regex((sink.reports[0] as { down: Error }).down.message, new RegExp(srvName.replaceAll(".", "\\.")));
});

test("nothing listening at start: down, never an empty snapshot", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(1) });
  const server = dns.server;
  await dns.stop(); // the port is now closed
  const sink = new RecordingSink();
  const source = new DnsSource(config(server, { name: srvName }));
  t.teardown(() => source.stop());
  await source.start(sink);
  await sink.next(() => true, 2);
  t.true(sink.reports.every(isDown), sink.reports.map(describe).join(" "));
  t.regex((sink.reports[0] as { down: Error }).down.message, /ECONNREFUSED/);
});

test("NXDOMAIN for a name that had records empties the view only after emptyAfter answers in a row", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name, type: "A", port: 80, emptyAfter: 3 }));
  t.teardown(() => Promise.all([source.stop(), dns.stop()]));
  await source.start(sink);

  await dns.setRecords({ hosts: {} }); // the name is gone: NXDOMAIN
  const emptied = await sink.next(isSnapshotOf([]));
  const sinceFirstNx = sink.reports.findIndex(
    (r) => isDown(r) && /ENOTFOUND, 1 of 3/.test((r as { down: Error }).down.message),
  );
  t.true(sinceFirstNx > 0, sink.reports.map(describe).join(" "));
  // Exactly two doubted answers (down), then the third empties the view.
  t.deepEqual(sink.reports.slice(sinceFirstNx, emptied + 1).map(describe), [
    `down(dns A ${name}: ENOTFOUND, 1 of 3 before the view empties)`,
    `down(dns A ${name}: ENOTFOUND, 2 of 3 before the view empties)`,
    "snapshot()",
  ]);
  t.true(
    sink.reports.slice(0, sinceFirstNx).every(isSnapshotOf(["127.0.0.11:80"])),
    "every earlier report was the old view",
  );
});

test("an NXDOMAIN streak shorter than emptyAfter leaves the view as it was", async (t) => {
  const name = `web.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11"] } });
  const sink = new RecordingSink();
  // emptyAfter is out of reach for the test's short outage.
  const source = new DnsSource(config(dns, { name, type: "A", port: 80, emptyAfter: 1000 }));
  t.teardown(() => Promise.all([source.stop(), dns.stop()]));
  await source.start(sink);

  await dns.setRecords({ hosts: {} });
  await sink.next((r) => isDown(r) && /ENOTFOUND, 2 of 1000/.test(r.down.message));
  await dns.setRecords({ hosts: { [name]: ["127.0.0.11"] } });
  const back = await sink.next(isSnapshotOf(["127.0.0.11:80"]));
  t.false(sink.reports.slice(0, back).some(isSnapshotOf([])), "never reported empty");

  // The streak restarted: the next outage counts from 1 again.
  await dns.setRecords({ hosts: {} });
  const again = await sink.next(isDown, back);
  t.regex((sink.reports[again] as { down: Error }).down.message, /ENOTFOUND, 1 of 1000/);
});

test("a name that never had records is an empty membership straight away", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(1) });
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name: `_http._tcp.nothing.${zone}` }));
  const cluster = new Cluster({ source: new DnsSource(source.config) });
  t.teardown(() => Promise.all([cluster.stop(), source.stop(), dns.stop()]));
  await source.start(sink);
  t.true(isSnapshotOf([])(sink.reports[0] as Report), describe(sink.reports[0] as Report));
  await cluster.start();
  t.true(cluster.synced);
  t.is(cluster.size, 0);
});

test("stop ends polling: no reports afterwards", async (t) => {
  const dns = await Dnsmasq.start({ srv: statefulSet(2) });
  t.teardown(() => dns.stop());
  const sink = new RecordingSink();
  const source = new DnsSource(config(dns, { name: srvName }));
  await source.start(sink);
  await sink.next(() => true, 1);
  await source.stop();
  await source.stop(); // idempotent
  const count = sink.reports.length;
  await new Promise((resolve) => setTimeout(resolve, fast.interval * 4));
  t.is(sink.reports.length, count);
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
