/**
 * A member's `protocol` (h1 | h2c): every membership source reads it, bad
 * values are refused naming the field, and it travels with the member to
 * the proxy's pools, the workers' routing snapshot and GET /ring.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { RoutingTable } from "../src/handoff/table.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { DnsSource, parseDnsConfig } from "../src/membership/dns.ts";
import { parseMember } from "../src/membership/etcd/documents.ts";
import { EtcdSource } from "../src/membership/etcd/source.ts";
import { parseMembersFile } from "../src/membership/file.ts";
import { SerfSource } from "../src/membership/serf/source.ts";
import type { Member } from "../src/membership/source.ts";
import { StaticSource } from "../src/membership/static.ts";
import { Deadlines } from "../src/proxy/deadlines.ts";
import { Upstreams } from "../src/proxy/upstream.ts";
import { Ring } from "../src/ring/ring.ts";
import { RoutingFeed, routingSnapshot } from "../src/serving/routing-snapshot.ts";
import { WorkerView } from "../src/serving/workers/view.ts";
import { send } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";
import { ManualClock } from "./helpers/clock.ts";
import { Dnsmasq, zone } from "./helpers/dnsmasq.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { Nodes } from "./helpers/etcd-nodes.ts";
import { SerfAgents } from "./helpers/serf.ts";
import { TestSource } from "./helpers/source.ts";
import { until } from "./helpers/until.ts";

const protocols = (members: readonly Member[]) =>
  Object.fromEntries([...members].sort((a, b) => a.name.localeCompare(b.name)).map((m) => [m.name, m.protocol]));

// ---------------------------------------------------------------------------
// Config and files: the field is read, and a bad value names where it is.

test("static members: protocol per member, absent when not written; a bad value names the member's field", (t) => {
  const config = parseConfig({
    membership: {
      static: {
        members: [
          { name: "a", url: "http://127.0.0.1:9101" },
          { name: "b", url: "http://127.0.0.1:9102", protocol: "h2c" },
          { name: "c", url: "http://127.0.0.1:9103", protocol: "h1" },
        ],
      },
    },
  });
  const members = config.membership?.static?.members ?? [];
  t.deepEqual(
    members.map((m) => [m.name, m.protocol]),
    [
      ["a", undefined],
      ["b", "h2c"],
      ["c", "h1"],
    ],
  );
  const source = new StaticSource(members);
  const seen: Member[] = [];
  void source.start({ snapshot: (m) => seen.push(...m), down: () => {} });
  t.deepEqual(protocols(seen), { a: undefined, b: "h2c", c: "h1" });

  for (const bad of ["h2", "H2C", 2, ""]) {
    const error = t.throws(
      () =>
        parseMembershipConfig({
          static: {
            members: [
              { name: "a", url: "http://x:1" },
              { name: "b", url: "http://x:2", protocol: bad },
            ],
          },
        }),
      { instanceOf: ConfigError },
    );
    t.is(error?.field, "membership.static.members[1].protocol", String(bad));
    t.regex(error?.message ?? "", /one of h1, h2c/);
  }
});

test("serf and dns: one protocol for every member of the source; a bad value names the setting", (t) => {
  t.is(parseMembershipConfig({ serf: { rpc: "127.0.0.1:7373", protocol: "h2c" } }).serf?.protocol, "h2c");
  t.is(parseMembershipConfig({ serf: { rpc: "127.0.0.1:7373" } }).serf?.protocol, undefined);
  t.is(parseDnsConfig({ name: "web.example", type: "A", port: 80, protocol: "h2c" }).protocol, "h2c");
  t.is(parseDnsConfig({ name: "web.example", type: "A", port: 80 }).protocol, undefined);
  const bad: [unknown, string][] = [
    [{ serf: { protocol: "grpc" } }, "membership.serf.protocol"],
    [{ dns: { name: "web.example", type: "A", port: 80, protocol: "http2" } }, "membership.dns.protocol"],
  ];
  for (const [section, field] of bad) {
    const error = t.throws(() => parseMembershipConfig(section), { instanceOf: ConfigError });
    t.is(error?.field, field);
  }
});

test("ringroute check exits 2 naming membership.static.members[1].protocol", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-protocol-"));
  const path = join(dir, "ringroute.yaml");
  writeFileSync(
    path,
    [
      "membership:",
      "  static:",
      "    members:",
      '      - { name: a, url: "http://127.0.0.1:9101", protocol: h2c }',
      '      - { name: b, url: "http://127.0.0.1:9102", protocol: http2 }',
      "",
    ].join("\n"),
  );
  const run = await ringroute(["check", "--config", path]);
  t.is(run.code, 2);
  t.regex(run.stderr, /^ringroute: membership\.static\.members\[1\]\.protocol: must be one of h1, h2c, got "http2"\n$/);
});

test("members files: protocol per entry in YAML and JSON; a bad value names the file and entry", (t) => {
  const yaml = parseMembersFile(
    "members:\n  - { name: a, url: 'http://127.0.0.1:1' }\n  - { name: g, url: 'http://127.0.0.1:2', protocol: h2c }\n",
    "m.yaml",
  );
  t.deepEqual(protocols(yaml), { a: undefined, g: "h2c" });
  const json = parseMembersFile(
    JSON.stringify([
      { name: "a", url: "http://127.0.0.1:1", protocol: "h1" },
      { name: "g", url: "http://127.0.0.1:2", protocol: "h2c" },
    ]),
    "m.json",
  );
  t.deepEqual(protocols(json), { a: "h1", g: "h2c" });
  const error = t.throws(
    () =>
      parseMembersFile(
        JSON.stringify([
          { name: "a", url: "http://x:1" },
          { name: "b", url: "http://x:2", protocol: "h3" },
        ]),
        "m.json",
      ),
    { instanceOf: ConfigError },
  );
  t.is(error?.field, "m.json: [1].protocol");
});

test("etcd member documents: protocol h1 or h2c is read; any other value leaves the member out", (t) => {
  t.is(parseMember(JSON.stringify({ url: "http://x:1", tags: {}, ready: true }))?.protocol, undefined);
  t.is(parseMember(JSON.stringify({ url: "http://x:1", tags: {}, ready: true, protocol: "h1" }))?.protocol, "h1");
  t.is(parseMember(JSON.stringify({ url: "http://x:1", tags: {}, ready: true, protocol: "h2c" }))?.protocol, "h2c");
  for (const protocol of ["h2", "grpc", 1, null]) {
    t.is(parseMember(JSON.stringify({ url: "http://x:1", tags: {}, ready: true, protocol })), undefined);
  }
});

// ---------------------------------------------------------------------------
// Real sources: Serf agents, dnsmasq, etcd.

test("serf: every member the agent lists gets the source's protocol", async (t) => {
  const agents = new SerfAgents();
  t.teardown(() => agents.stopAll());
  const hub = await agents.start("p0", { tags: { http: "127.0.0.1:9100" } });
  await agents.start("p1", { tags: { http: "127.0.0.1:9101" } });
  await agents.join("p1", "p0");
  const cluster = new Cluster({ source: new SerfSource({ rpc: hub.rpc, protocol: "h2c" }) });
  t.teardown(() => cluster.stop());
  await cluster.start();
  await until(() => cluster.has("p1"), { what: "p1 in the ring" });
  t.deepEqual(protocols(cluster.knownMembers()), { p0: "h2c", p1: "h2c" });
});

test("dns: every record's member gets the source's protocol", async (t) => {
  const name = `grpc.${zone}`;
  const dns = await Dnsmasq.start({ hosts: { [name]: ["127.0.0.11", "127.0.0.12"] } });
  t.teardown(() => dns.stop());
  const source = new DnsSource(
    { ...parseDnsConfig({ name, type: "A", port: 50051, protocol: "h2c" }), server: dns.server },
    { clock: new ManualClock() },
  );
  const cluster = new Cluster({ source });
  t.teardown(() => cluster.stop());
  await cluster.start();
  t.deepEqual(protocols(cluster.knownMembers()), { "127.0.0.11:50051": "h2c", "127.0.0.12:50051": "h2c" });
});

test.serial("etcd: a member registered with protocol h2c writes it in its document, and proxies read it", async (t) => {
  const etcd = await EtcdServer.start();
  t.teardown(() => etcd.stop());
  const nodes = new Nodes(etcd, "protocol", { partitions: 32, replicas: 2 });
  t.teardown(() => nodes.stopAll());
  const grpc = await nodes.member("grpc", { protocol: "h2c" });
  await nodes.member("web");
  const value = (name: string) =>
    until(() => etcd.ctl("get", "--print-value-only", `${nodes.prefix}members/${name}`), { what: `${name}'s key` });
  t.deepEqual(JSON.parse(await value("grpc")), {
    url: "http://127.0.0.1:1/grpc",
    tags: {},
    ready: true,
    protocol: "h2c",
  });
  t.is(JSON.parse(await value("web")).protocol, "h1", "an unset protocol is written as h1");
  await until(() => grpc.cluster.member("web") !== undefined, { what: "web known to grpc's cluster" });
  t.is(grpc.cluster.member("grpc")?.protocol, "h2c");
  t.is(grpc.cluster.member("web")?.protocol, "h1");

  // A proxy's source: a document that changes only its protocol is a change the proxy sees.
  const source = new EtcdSource({ endpoints: [etcd.endpoint], cluster: "protocol", handoff: "immediate" });
  const proxy = new Cluster({ source, ring: { partitions: 32, replicas: 2 } });
  t.teardown(() => proxy.stop());
  await proxy.start();
  await until(() => proxy.member("web") !== undefined, { what: "web in the proxy's view" });
  const feed = new RoutingFeed(proxy);
  t.teardown(() => feed.stop());
  const before = feed.current.version;
  const lease = await etcd.grant(30);
  await etcd.ctl(
    "put",
    `--lease=${lease}`,
    `${nodes.prefix}members/other`,
    JSON.stringify({ url: "http://127.0.0.1:1/other", tags: {}, ready: true, protocol: "h2c" }),
  );
  await until(() => proxy.member("other")?.protocol === "h2c", { what: "other, h2c, in the proxy's view" });
  const h2cVersion = feed.current.version;
  t.true(h2cVersion > before);
  t.is(feed.current.known.find((m) => m.name === "other")?.protocol, "h2c");
  await etcd.ctl(
    "put",
    `--lease=${lease}`,
    `${nodes.prefix}members/other`,
    JSON.stringify({ url: "http://127.0.0.1:1/other", tags: {}, ready: true, protocol: "h1" }),
  );
  await until(() => proxy.member("other")?.protocol === "h1", { what: "other's protocol back to h1" });
  t.true(feed.current.version > h2cVersion, "only the protocol changed: a new version for the workers");
  t.is(feed.current.known.find((m) => m.name === "other")?.protocol, undefined, "h1 travels as no protocol");
  // A protocol the proxy cannot speak leaves the member out rather than guessing.
  await etcd.ctl(
    "put",
    `--lease=${lease}`,
    `${nodes.prefix}members/other`,
    JSON.stringify({ url: "http://127.0.0.1:1/other", tags: {}, ready: true, protocol: "h3" }),
  );
  await until(() => proxy.member("other") === undefined, { what: "other left out" });
});

test.serial("ringroute member --protocol h2c registers the member as h2c; a bad value exits 2 naming it", async (t) => {
  t.timeout(240_000, "CLI processes on a loaded machine");
  const bad = await ringroute(["member", "--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--protocol=h2"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^ringroute: --protocol: must be one of h1, h2c, got "h2"\n$/);

  const etcd = await EtcdServer.start();
  t.teardown(() => etcd.stop());
  const { spawn } = await import("node:child_process");
  const cli = new URL("../src/cli.ts", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      cli,
      "member",
      `--etcd=${etcd.endpoint}`,
      "--cluster=cli",
      "--name=grpc-0",
      "--url=http://127.0.0.1:50051",
      "--protocol=h2c",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const value = await until(() => etcd.ctl("get", "--print-value-only", "/ringroute/cli/members/grpc-0"), {
    what: "grpc-0's member key",
    timeout: 120_000,
  });
  t.deepEqual(JSON.parse(value), { url: "http://127.0.0.1:50051", tags: {}, ready: true, protocol: "h2c" });
});

// ---------------------------------------------------------------------------
// From the Cluster to the proxy and the workers.

test("a protocol change under the same name and URL is a new routing snapshot that carries it to the workers", async (t) => {
  const source = new TestSource(["a", "b"]);
  const cluster = new Cluster({ source, ring: { partitions: 64, replicas: 2 } });
  await cluster.start();
  const feed = new RoutingFeed(cluster);
  const sent: number[] = [];
  feed.listen((s) => sent.push(s.version));
  source.send("a", { name: "b", protocol: "h1" });
  t.deepEqual(sent, [], "h1 written out is what absent means: nothing to send");
  source.send("a", { name: "b", protocol: "h2c" });
  t.deepEqual(sent, [1]);
  t.is(feed.current.routing.checksum, Ring.build(["a", "b"], { partitions: 64, replicas: 2 }).checksum);
  source.send("a", { name: "b", protocol: "h2c" });
  t.deepEqual(sent, [1], "the same snapshot again: nothing sent");
  source.send("a", "b");
  t.deepEqual(sent, [1, 2], "back to h1");
  source.send("a", { name: "b", protocol: "h2c" });
  t.deepEqual(sent, [1, 2, 3]);

  // The snapshot crosses a process boundary as structured data; the worker's view has the field.
  const view = new WorkerView();
  view.apply(structuredClone(feed.current));
  t.is(view.member("b")?.protocol, "h2c");
  t.is(view.member("a")?.protocol, undefined);
  feed.stop();
  await cluster.stop();
});

test("the proxy's pool for a member is replaced when its protocol changes, and kept otherwise", (t) => {
  const ring = Ring.build(["a", "b"], { partitions: 16, replicas: 1 });
  const view = new WorkerView();
  const records = (b: Partial<Member>): Member[] => [
    { name: "a", url: "http://127.0.0.1:1", tags: {}, state: "alive" },
    { name: "b", url: "http://127.0.0.1:2", tags: {}, state: "alive", ...b },
  ];
  view.apply(routingSnapshot(0, RoutingTable.ready(ring), records({})));
  const settings = {
    connections: 4,
    connect: 1000,
    response: 1000,
    keepAlive: 1000,
    queue: 1000,
    limits: { headers: 100, headerBytes: 65536, url: 8192 },
  };
  const upstreams = new Upstreams(view, settings, new Deadlines(new ManualClock(), 1000));
  t.teardown(() => upstreams.destroy());
  const first = upstreams.get("b");
  t.is(upstreams.get("b"), first, "the same member: the same pool");
  view.apply(routingSnapshot(1, RoutingTable.ready(ring), records({ protocol: "h1" })));
  t.is(upstreams.get("b"), first, "h1 written out is what absent means: the pool stays");
  view.apply(routingSnapshot(2, RoutingTable.ready(ring), records({ protocol: "h2c" })));
  const second = upstreams.get("b");
  t.not(second, first, "a new protocol: a new pool, the old one closed");
  t.is(upstreams.get("a"), upstreams.get("a"));
  view.apply(routingSnapshot(3, RoutingTable.ready(ring), records({})));
  t.not(upstreams.get("b"), second, "and back");
});

test("GET /ring lists each member's protocol: h1 unless it declares h2c", async (t) => {
  const source = new TestSource(["a", { name: "g", protocol: "h2c" }, { name: "w", protocol: "h1" }]);
  const cluster = new Cluster({ source, ring: { partitions: 32, replicas: 2 } });
  await cluster.start();
  const metrics = new Metrics(cluster);
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  t.teardown(async () => {
    await admin.close();
    metrics.close();
    await cluster.stop();
  });
  const reply = await send(`http://127.0.0.1:${port}`, "/ring?table=false");
  t.deepEqual(
    reply.json.members.map((m: { name: string; url: string; protocol: string }) => [m.name, m.url, m.protocol]),
    [
      ["a", "http://a.test:80", "h1"],
      ["g", "http://g.test:80", "h2c"],
      ["w", "http://w.test:80", "h1"],
    ],
  );
});

test("the Cluster and a worker's view tell listeners when a member is reached differently: a new URL or protocol, nothing else", async (t) => {
  const source = new TestSource(["a", "b"]);
  const cluster = new Cluster({ source, ring: { partitions: 16, replicas: 1 } });
  await cluster.start();
  const heard: string[] = [];
  cluster.listen({
    memberChanged: (m, before) =>
      heard.push(`${m.name} ${before.url} ${before.protocol ?? "-"} → ${m.url} ${m.protocol ?? "-"}`),
  });
  const feed = new RoutingFeed(cluster);
  const view = new WorkerView();
  view.apply(feed.current);
  const viewHeard: string[] = [];
  view.listen({
    memberChanged: (m, before) => viewHeard.push(`${m.name} ${before.protocol ?? "-"} → ${m.protocol ?? "-"}`),
  });
  feed.listen((s) => view.apply(s));

  source.send("a", { name: "b", protocol: "h1" }); // what absent means
  source.send("a", { name: "b", tags: { zone: "eu" } }); // tags are not how it is reached
  source.send("a", { name: "b", state: "failed" }, "c"); // nor is its state
  source.send("a", "b", "c");
  t.deepEqual(heard, []);
  source.send("a", { name: "b", protocol: "h2c" });
  source.send("a", { name: "b", protocol: "h2c", url: "http://b2.test:80" });
  source.send("a", "b");
  t.deepEqual(heard, [
    "b http://b.test:80 - → http://b.test:80 h2c",
    "b http://b.test:80 h2c → http://b2.test:80 h2c",
    "b http://b2.test:80 h2c → http://b.test:80 -",
  ]);
  t.deepEqual(viewHeard, ["b - → h2c", "b h2c → h2c", "b h2c → -"]);
  feed.stop();
  await cluster.stop();
});

/** One snapshot's records: a member (by name) with one of two URLs, a protocol said or not, alive or not, tags. */
const record = fc.record({
  name: fc.constantFrom("a", "b", "c", "d"),
  url: fc.constantFrom("http://x.test:1", "http://y.test:2"),
  protocol: fc.constantFrom(undefined, "h1" as const, "h2c" as const),
  state: fc.constantFrom("alive" as const, "failed" as const),
  zone: fc.constantFrom("eu", "us"),
});
const snapshot = fc.uniqueArray(record, { selector: (r) => r.name, maxLength: 4 });

test("memberChanged is exactly the members listed before and after whose URL or protocol (absent = h1) differs, for any sequence of snapshots", async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(snapshot, { minLength: 1, maxLength: 8 }), async (snapshots) => {
      const members = snapshots.map((list) =>
        list.map(({ name, url, protocol, state, zone }) => ({
          name,
          url,
          state,
          tags: { zone },
          ...(protocol === undefined ? {} : { protocol }),
        })),
      );
      // The model: compare each snapshot with the one before, member by member, by brute force.
      const expected: string[] = [];
      for (let i = 1; i < members.length; i++) {
        for (const now of members[i] as Member[]) {
          const before = (members[i - 1] as Member[]).find((m) => m.name === now.name);
          if (before === undefined) continue;
          if (before.url !== now.url || (before.protocol ?? "h1") !== (now.protocol ?? "h1"))
            expected.push(`${i} ${now.name} ${now.url} ${now.protocol ?? "h1"}`);
        }
      }
      const source = new TestSource();
      const cluster = new Cluster({ source, ring: { partitions: 8, replicas: 1 } });
      await cluster.start();
      const feed = new RoutingFeed(cluster);
      const view = new WorkerView();
      view.apply(feed.current);
      feed.listen((s) => view.apply(structuredClone(s)));
      let step = 0;
      const heard: string[] = [];
      const viewHeard: string[] = [];
      cluster.listen({ memberChanged: (m) => heard.push(`${step} ${m.name} ${m.url} ${m.protocol ?? "h1"}`) });
      view.listen({ memberChanged: (m) => viewHeard.push(`${step} ${m.name} ${m.url} ${m.protocol ?? "h1"}`) });
      for (const list of members) {
        source.set(list);
        step++;
      }
      feed.stop();
      await cluster.stop();
      // Each line names the snapshot (counted from 0) whose application told it.
      t.deepEqual(heard, expected);
      t.deepEqual(viewHeard, expected, "a worker's view hears the same changes from the snapshots it is sent");
    }),
    { numRuns: 200 },
  );
});
