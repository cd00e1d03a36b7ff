import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { HealthCheckedSource } from "../src/membership/health.ts";
import { createSource } from "../src/membership/index.ts";
import type { Member, MembershipSource, SnapshotSink } from "../src/membership/source.ts";
import { StaticSource } from "../src/membership/static.ts";

/** A backend whose health answer the test sets; it counts the checks it answers. */
interface Backend {
  url: string;
  /** Status to answer with, or "hang" to never answer. */
  status: number | "hang";
  /** Answers given, by status. */
  answered: Map<number, number>;
  paths: string[];
  close(): Promise<void>;
}

async function backend(status: number | "hang" = 200): Promise<Backend> {
  const hanging: http.ServerResponse[] = [];
  const b: Backend = {
    url: "",
    status,
    answered: new Map(),
    paths: [],
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
  const server = http.createServer((req, res) => {
    b.paths.push(req.url ?? "");
    if (b.status === "hang") {
      hanging.push(res);
      return;
    }
    b.answered.set(b.status, (b.answered.get(b.status) ?? 0) + 1);
    res.statusCode = b.status;
    res.end("ok");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  b.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return b;
}

/** A URL nothing listens on: a server's port right after it closed. */
async function deadUrl(): Promise<string> {
  const b = await backend();
  await b.close();
  return b.url;
}

const fast = { path: "/healthz", interval: 20, timeout: 300, rise: 2, fall: 3, reconnectInterval: 40 };

async function healthCluster(members: { name: string; url: string }[], options = {}) {
  const lines: string[] = [];
  const source = new HealthCheckedSource(new StaticSource(members), { ...fast, ...options, log: (l) => lines.push(l) });
  const cluster = new Cluster({ source, ring: { partitions: 32, replicas: 2 } });
  const events: string[] = [];
  cluster.listen({
    memberUp: (m) => events.push(`up ${m.name}`),
    memberDown: (m) => events.push(`down ${m.name}`),
    ring: (r) => events.push(`ring ${r.members.join(",")}`),
  });
  return { source, cluster, events, lines };
}

function next(cluster: Cluster, event: "memberUp" | "memberDown", name: string): Promise<void> {
  return new Promise((resolve) => {
    const off = cluster.listen({
      [event]: (m: Member) => {
        if (m.name === name) {
          off();
          resolve();
        }
      },
    });
  });
}

function synced(cluster: Cluster): Promise<void> {
  return new Promise((resolve) => {
    if (cluster.synced) return resolve();
    const off = cluster.listen({
      ring: () => {
        off();
        resolve();
      },
      source: () => {
        off();
        resolve();
      },
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("start waits for one check of each member: healthy members start in, dead ones never enter", async (t) => {
  const a = await backend();
  const b = await backend(503);
  const c = await deadUrl();
  const { cluster, events, lines } = await healthCluster([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
    { name: "c", url: c },
  ]);
  await cluster.start();
  // start() waited for the first round of checks: the cluster is synced already.
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["a"]);
  // One ring, no member in then out again.
  t.deepEqual(events, ["up a", "ring a"]);
  t.is(cluster.member("b")?.state, "failed");
  t.is(cluster.member("c")?.state, "failed");
  t.is(lines.length, 2);
  t.regex(lines.join("\n"), /member b .*HTTP 503/);
  t.regex(lines.join("\n"), /member c .*ECONNREFUSED/);
  t.true(a.paths.every((p) => p === "/healthz"));
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("a member leaves the ring after exactly `fall` failed checks in a row", async (t) => {
  const a = await backend();
  const b = await backend();
  const { cluster } = await healthCluster([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
  ]);
  await cluster.start();
  await synced(cluster);
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  const down = next(cluster, "memberDown", "b");
  b.status = 500;
  await down;
  t.is(b.answered.get(500), fast.fall);
  t.deepEqual(cluster.ring.members, ["a"]);
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("a member that is out comes back after exactly `rise` passes in a row", async (t) => {
  const a = await backend();
  const b = await backend(500);
  const { cluster, lines } = await healthCluster([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
  ]);
  await cluster.start();
  await synced(cluster);
  t.false(cluster.has("b"));
  const up = next(cluster, "memberUp", "b");
  b.status = 204;
  await up;
  t.is(b.answered.get(204), fast.rise);
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  t.regex(lines.at(-1) ?? "", /member b .* back in the ring/);
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("a member that is out is retried at reconnectInterval, not at the check interval", async (t) => {
  const b = await backend(500);
  const { cluster } = await healthCluster([{ name: "b", url: b.url }], { interval: 10, reconnectInterval: 60_000 });
  await cluster.start();
  await synced(cluster);
  t.false(cluster.has("b"));
  const checks = b.paths.length;
  await sleep(300); // some 30 intervals
  t.is(b.paths.length, checks);
  await cluster.stop();
  await b.close();
});

test("a check that gets no answer within the timeout fails", async (t) => {
  const a = await backend();
  const b = await backend("hang");
  const { cluster, lines } = await healthCluster(
    [
      { name: "a", url: a.url },
      { name: "b", url: b.url },
    ],
    { timeout: 100 },
  );
  await cluster.start();
  await synced(cluster);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.regex(lines.join("\n"), /member b .*no answer within 100 ms/);
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("a member whose server goes away leaves, and rejoins when a server answers there again", async (t) => {
  const a = await backend();
  const b = await backend();
  const { cluster, events } = await healthCluster([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
  ]);
  await cluster.start();
  await synced(cluster);
  const down = next(cluster, "memberDown", "b");
  await b.close();
  await down;
  const port = Number(new URL(b.url).port);
  const again = http.createServer((_req, res) => res.end("back"));
  again.listen(port, "127.0.0.1");
  await once(again, "listening");
  await next(cluster, "memberUp", "b");
  t.deepEqual(events, ["up a", "up b", "ring a,b", "down b", "ring a", "up b", "ring a,b"]);
  await cluster.stop();
  again.close();
  await a.close();
});

test("members the inner source does not call alive are passed through and not checked", async (t) => {
  const a = await backend();
  const b = await backend();
  const inner: MembershipSource = {
    kind: "manual",
    async start(sink: SnapshotSink) {
      sink.snapshot([
        { name: "a", url: a.url, tags: {}, state: "alive" },
        { name: "b", url: b.url, tags: {}, state: "left" },
      ]);
    },
    async stop() {},
  };
  const source = new HealthCheckedSource(inner, { ...fast, log: () => {} });
  t.is(source.kind, "manual");
  const cluster = new Cluster({ source });
  await cluster.start();
  await synced(cluster);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.is(cluster.member("b")?.state, "left");
  t.is(b.paths.length, 0);
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("after stop no more checks are made", async (t) => {
  const a = await backend();
  const { cluster } = await healthCluster([{ name: "a", url: a.url }]);
  await cluster.start();
  await synced(cluster);
  await cluster.stop();
  const checks = a.paths.length;
  await sleep(150);
  t.is(a.paths.length, checks);
  await a.close();
});

test("health checks configured but disabled are not made; every static member is in", async (t) => {
  const a = await backend(500);
  const config = parseMembershipConfig({
    static: { members: [{ name: "a", url: a.url }] },
    health: { enabled: false, interval: "20ms" },
  });
  const cluster = new Cluster({ source: createSource(config) });
  await cluster.start();
  t.deepEqual(cluster.ring.members, ["a"]);
  await sleep(100);
  t.is(a.paths.length, 0);
  await cluster.stop();
  await a.close();
});

test("configured health checks wrap the static source and use the configured path", async (t) => {
  const a = await backend();
  const b = await backend(404);
  const config = parseMembershipConfig({
    static: {
      members: [
        { name: "a", url: a.url },
        { name: "b", url: b.url },
      ],
    },
    health: { path: "/ready?deep=1", interval: "50ms", timeout: "500ms" },
  });
  const cluster = new Cluster({ source: createSource(config, { log: () => {} }) });
  t.is(cluster.sourceKind, "static");
  await cluster.start();
  await synced(cluster);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.is(a.paths[0], "/ready?deep=1");
  await cluster.stop();
  await Promise.all([a.close(), b.close()]);
});

test("a static source without health checks puts every member in the ring at once", async (t) => {
  const cluster = new Cluster({
    source: createSource(parseMembershipConfig({ static: { members: [{ name: "x", url: await deadUrl() }] } })),
  });
  await cluster.start();
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["x"]);
  await cluster.stop();
});
