/**
 * The proxy under coordinated hand-offs, with the routing table set by the
 * test: a partition no member holds ready waits (on a manual clock) and then
 * gets 503 partition_moving; failover stays with members routed the
 * partition; members get the ownership headers; whatever x-ringroute-*
 * header a client sends never reaches a member.
 */
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig, type ProxyConfig } from "../src/config.ts";
import type { Coordination } from "../src/handoff/coordination.ts";
import { RoutingTable, type SlotState } from "../src/handoff/table.ts";
import type { MembershipSource, SnapshotSink } from "../src/membership/source.ts";
import { createProxy, type RoutingProxy } from "../src/proxy/server.ts";
import type { Ring } from "../src/ring/ring.ts";
import { ManualClock } from "./helpers/clock.ts";
import { closeSession, request, session } from "./helpers/h2.ts";
import { fixed, header, json, RawClient, RecordingBackend, scripts } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

/** A coordinating source whose routing table the test sets slot by slot. */
class HandoffSource implements MembershipSource {
  readonly kind = "test-coordinated";
  table: RoutingTable | undefined;
  readonly coordination: Coordination;

  constructor(
    readonly members: { name: string; url: string }[],
    handoffWait: number,
  ) {
    this.coordination = {
      version: 7,
      stableVersion: 6,
      consistent: false,
      partitionsInHandoff: 0,
      stalled: undefined,
      handoffWait,
      routing: () => this.table,
    };
  }

  #sink: SnapshotSink | undefined;

  async start(sink: SnapshotSink): Promise<void> {
    this.#sink = sink;
    this.present(this.members.map((m) => m.name));
  }

  /** The members ready now; the others are draining (registered, out of the ring). Back in, one registered anew. */
  present(names: string[]): void {
    this.#sink?.snapshot(
      this.members.map((m) => ({
        ...m,
        tags: {},
        state: names.includes(m.name) ? ("alive" as const) : ("left" as const),
      })),
    );
  }

  async stop(): Promise<void> {}

  /** Every slot of `ring` to its owner, ready, except those `change` says otherwise (version 7). */
  route(ring: Ring, change: (p: number, r: number) => { member: string | undefined; state: SlotState } | undefined) {
    const slots = [];
    for (let p = 0; p < ring.config.partitions; p++) {
      for (let r = 0; r < ring.ownerCount; r++) {
        slots.push(change(p, r) ?? { member: ring.owner(p, r), state: "ready" as const });
      }
    }
    this.table = RoutingTable.coordinated(ring, slots, 7);
  }
}

interface Setup {
  clock: ManualClock;
  source: HandoffSource;
  cluster: Cluster;
  backends: RecordingBackend[];
  port: number;
  statuses: number[];
  /** Request heads the proxy has read (and routed, or set waiting). */
  started: { count: number };
  key: string;
  partition: number;
  proxy: RoutingProxy;
}

async function setup(
  t: { teardown(fn: () => unknown): void },
  options: { replicas?: number; handoffWait?: number; proxy?: (config: ProxyConfig) => void; dead?: string[] } = {},
): Promise<Setup> {
  const backends = await Promise.all(["a", "b", "c"].map((name) => RecordingBackend.start(name)));
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  // A dead member: its URL is a port nothing listens on.
  for (const name of options.dead ?? []) await backends.find((b) => b.name === name)?.close();
  const clock = new ManualClock();
  const source = new HandoffSource(
    backends.map((b) => ({ name: b.name, url: b.url })),
    options.handoffWait ?? 2000,
  );
  const cluster = new Cluster({ source, ring: { partitions: 8, replicas: options.replicas ?? 1 }, clock });
  await cluster.start();
  const config = defaultConfig();
  options.proxy?.(config.proxy);
  const statuses: number[] = [];
  const started = { count: 0 };
  const proxy = createProxy({
    cluster,
    clock,
    config: { key: config.key, proxy: config.proxy },
    observer: {
      requestStarted: () => started.count++,
      request: (_member, _method, status) => statuses.push(status === "truncated" ? -1 : status),
      upstreamError() {},
      failover() {},
      ejection() {},
    },
  });
  const { port } = await proxy.listen(0, "127.0.0.1");
  t.teardown(async () => {
    // The proxy's shutdown deadline runs on the manual clock.
    const closing = proxy.close(100);
    clock.advance(200);
    await closing;
  });
  const key = "/users/42";
  return {
    clock,
    source,
    cluster,
    backends,
    port,
    statuses,
    started,
    key,
    partition: cluster.ring.partitionOf(key),
    proxy,
  };
}

async function get(s: Setup, extra = ""): Promise<RawClient> {
  const client = await RawClient.connect(s.port);
  await client.send(`GET ${s.key} HTTP/1.1\r\nhost: x\r\n${extra}\r\n`);
  return client;
}

/** Waits until the proxy has read `count` request heads: routed, or waiting for their partition. */
async function parsed(s: Setup, count: number): Promise<void> {
  await until(() => s.started.count >= count, { what: `${count} request head(s) read by the proxy` });
}

test("a request for a partition nobody holds ready waits, and goes to the owner as soon as it is ready", async (t) => {
  const s = await setup(t);
  const ring = s.cluster.ring;
  const owner = ring.owner(s.partition, 0) as string;
  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const client = await get(s);
  await parsed(s, 1);
  s.clock.advance(1900);
  t.deepEqual(s.statuses, [], "no answer within the hand-off wait");
  t.is(
    s.backends.reduce((n, b) => n + b.bytesSeen, 0),
    0,
  );

  s.source.route(ring, () => undefined);
  s.clock.advance(25);
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 200);
  t.is(s.backends.find((b) => b.name === owner)?.requests.length, 1, "the owner got it");
  t.is(
    s.backends.reduce((n, b) => n + b.requests.length, 0),
    1,
    "and nobody else",
  );
});

test("after handoffWait with nobody ready: 503 partition_moving naming the partition, with Retry-After; no member hears of it", async (t) => {
  const s = await setup(t, { handoffWait: 3000 });
  const ring = s.cluster.ring;
  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const client = await get(s);
  await parsed(s, 1);
  s.clock.advance(2999);
  t.deepEqual(s.statuses, [], "still waiting 1 ms before the wait ends");
  s.clock.advance(1);
  t.deepEqual(s.statuses, [503]);
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 503);
  t.is(response && header(response, "retry-after"), "3");
  t.like(response && json(response), { error: "partition_moving", partition: s.partition });
  t.is(
    s.backends.reduce((n, b) => n + b.bytesSeen, 0),
    0,
  );
});

test("a moving slot goes to the old owner the table names, with the ownership headers of its rank and version", async (t) => {
  const s = await setup(t);
  const ring = s.cluster.ring;
  const owner = ring.owner(s.partition, 0) as string;
  const old = ["a", "b", "c"].find((m) => m !== owner) as string;
  s.source.route(ring, (p) => (p === s.partition ? { member: old, state: "moving" } : undefined));
  const client = await get(s);
  await client.waitForResponses(1);
  const backend = s.backends.find((b) => b.name === old) as RecordingBackend;
  const bytes = backend.connections[0]?.bytes.toString("latin1") ?? "";
  t.true(
    bytes.includes(`x-ringroute-partition: ${s.partition}\r\nx-ringroute-rank: 0\r\nx-ringroute-version: 7\r\n`),
    bytes,
  );
  t.is(s.backends.find((b) => b.name === owner)?.bytesSeen, 0, "the new owner, not ready, got nothing");
});

test("x-ringroute-* headers from a client never reach a member; the member gets the proxy's, once", async (t) => {
  const s = await setup(t);
  s.source.route(s.cluster.ring, () => undefined);
  const client = await get(
    s,
    "X-Ringroute-Version: 999\r\nx-ringroute-partition: 1234\r\nx-RINGROUTE-rank: 5\r\nx-ringroute-anything: y\r\nx-ringroutes: kept\r\n",
  );
  await client.waitForResponses(1);
  const owner = s.cluster.ring.owner(s.partition, 0) as string;
  const bytes = s.backends.find((b) => b.name === owner)?.connections[0]?.bytes.toString("latin1") ?? "";
  t.false(/999|1234|anything/i.test(bytes), bytes);
  t.is(bytes.match(/x-ringroute-partition:/gi)?.length, 1);
  t.is(bytes.match(/x-ringroute-rank:/gi)?.length, 1);
  t.is(bytes.match(/x-ringroute-version:/gi)?.length, 1);
  t.true(bytes.includes("x-ringroutes: kept\r\n"), "a header that only starts alike is the client's own");
});

test("with replicas 1, a failing owner has no failover under coordination: the request is not sent to a member without the partition", async (t) => {
  const s = await setup(t, { dead: ["a", "b", "c"] });
  s.source.route(s.cluster.ring, () => undefined);
  const client = await get(s);
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 502);
  t.like(response && json(response), { error: "upstream_unavailable", tried: 1 });
});

test("with replicas 2 under coordination, failover goes only to the other member routed the partition", async (t) => {
  const probe = await setup(t, { replicas: 2 });
  const owners = probe.cluster.ring.ownersOfPartition(probe.partition);
  const third = ["a", "b", "c"].find((m) => !owners.includes(m)) as string;
  // The primary is dead; rank 1 is not ready anywhere: the third member, next on the preference list, must not be tried.
  const s = await setup(t, { replicas: 2, dead: [owners[0] as string] });
  s.source.route(s.cluster.ring, (p, r) =>
    p === s.partition && r === 1 ? { member: undefined, state: "none" } : undefined,
  );
  const client = await get(s);
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 502);
  t.is(s.backends.find((b) => b.name === third)?.bytesSeen, 0, "the member without the partition got nothing");

  // Rank 1 ready at its owner: the failover goes there.
  s.source.route(s.cluster.ring, () => undefined);
  const again = await get(s);
  const [ok] = await again.waitForResponses(1);
  t.is(ok?.status, 200);
  t.is(s.backends.find((b) => b.name === owners[1])?.requests.length, 1);
  t.is(s.backends.find((b) => b.name === third)?.bytesSeen, 0);
});

test("a member ejected for its 503s still gets the slots it alone holds ready; a re-registration starts with no ejection", async (t) => {
  // One failure ejects; the owner answers 503 ("retry shortly", as a member saving a partition does).
  const s = await setup(t, { proxy: (p) => Object.assign(p.eject, { after: 1, for: 10_000 }) });
  s.source.route(s.cluster.ring, () => undefined);
  const owner = s.backends.find((b) => b.name === s.cluster.ring.owner(s.partition, 0)) as RecordingBackend;
  const others = s.backends.filter((b) => b !== owner);
  owner.script = scripts.raw(fixed(503, "saving", [["Retry-After", "1"]]));
  const [first] = await (await get(s)).waitForResponses(1);
  t.is(first?.status, 503, "the member's own 503 goes back: nobody else holds the partition");
  t.deepEqual(s.proxy.ejected(), [owner.name]);

  // Ejected, but the only member holding the partition ready: the request still goes there, never to another.
  owner.script = scripts.echo();
  const [second] = await (await get(s)).waitForResponses(1);
  t.is(second?.status, 200);
  t.is(owner.requests.length, 2);
  t.is(
    others.reduce((n, b) => n + b.bytesSeen, 0),
    0,
    "members without the partition got nothing",
  );

  // A restart, leaving first: out of the ring it still answers for the slot it is releasing (503s, ejected
  // again), then registers anew. What the old registration did is forgotten.
  s.source.present(others.map((b) => b.name));
  s.source.route(s.cluster.ring, (p, r) =>
    p === s.partition && r === 0 ? { member: owner.name, state: "moving" } : undefined,
  );
  owner.script = scripts.raw(fixed(503, "saving", [["Retry-After", "1"]]));
  const [third] = await (await get(s)).waitForResponses(1);
  t.is(third?.status, 503);
  t.deepEqual(s.proxy.ejected(), [owner.name]);
  s.source.present(s.backends.map((b) => b.name));
  t.deepEqual(s.proxy.ejected(), [], "back in the ring, not ejected");
});

test("with replicas 2, a member ejected for its 503s is skipped only for the other member holding the partition", async (t) => {
  const s = await setup(t, { replicas: 2, proxy: (p) => Object.assign(p.eject, { after: 1, for: 10_000 }) });
  s.source.route(s.cluster.ring, () => undefined);
  const [primary, secondary] = s.cluster.ring.ownersOfPartition(s.partition);
  const backend = (name: string | undefined) => s.backends.find((b) => b.name === name) as RecordingBackend;
  const third = s.backends.find((b) => b.name !== primary && b.name !== secondary) as RecordingBackend;
  backend(primary).script = scripts.raw(fixed(503, "saving"));
  const [first] = await (await get(s)).waitForResponses(1);
  t.is(first?.status, 200, "retried on the member holding rank 1");
  t.is(backend(secondary).requests.length, 1);
  t.deepEqual(s.proxy.ejected(), [primary]);

  const [second] = await (await get(s)).waitForResponses(1);
  t.is(second?.status, 200);
  t.is(backend(primary).requests.length, 1, "skipped while ejected");
  t.is(backend(secondary).requests.length, 2);
  t.is(third.bytesSeen, 0, "the member without the partition got nothing");
});

test("without coordination the ownership headers are off by default, on when asked, and client x-ringroute-* is dropped either way", async (t) => {
  for (const ownership of ["auto", true] as const) {
    const backend = await RecordingBackend.start("a");
    t.teardown(() => backend.close());
    const { TestSource } = await import("./helpers/source.ts");
    const cluster = new Cluster({ source: new TestSource([{ name: "a", url: backend.url }]) });
    await cluster.start();
    const config = defaultConfig();
    config.proxy.headers.ownership = ownership;
    const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy } });
    const { port } = await proxy.listen(0, "127.0.0.1");
    t.teardown(() => proxy.close(100));
    const client = await RawClient.connect(port);
    await client.send("GET /k HTTP/1.1\r\nhost: x\r\nx-ringroute-version: 9\r\n\r\n");
    await client.waitForResponses(1);
    await until(() => backend.connections[0] !== undefined, { what: "the member's connection" });
    const bytes = backend.connections[0]?.bytes.toString("latin1") ?? "";
    t.false(bytes.includes("x-ringroute-version"), `${ownership}: ${bytes}`);
    t.is(
      bytes.includes(`x-ringroute-partition: ${cluster.ring.partitionOf("/k")}\r\nx-ringroute-rank: 0\r\n`),
      ownership === true,
    );
  }
});

test("a request body sent while its partition has nobody ready waits with it, and reaches the owner byte for byte", async (t) => {
  const s = await setup(t);
  const ring = s.cluster.ring;
  const owner = ring.owner(s.partition, 0) as string;
  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const client = await RawClient.connect(s.port);
  await client.send(`POST ${s.key} HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\nhello`);
  await parsed(s, 1);
  await client.send(" world");
  s.clock.advance(500);
  s.source.route(ring, () => undefined);
  s.clock.advance(25);
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 200);
  const backend = s.backends.find((b) => b.name === owner) as RecordingBackend;
  const [request] = await backend.waitForRequests(1);
  t.is(request?.body.toString("latin1"), "hello world");
  t.regex(backend.connections[0]?.bytes.toString("latin1") ?? "", /\r\n\r\nhello world$/);
});

test("a client that resets its connection while waiting costs nothing: no member hears of it and its timer is gone", async (t) => {
  const s = await setup(t);
  const ring = s.cluster.ring;
  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const client = await get(s);
  await parsed(s, 1);
  const pending = s.clock.pending;
  client.socket.resetAndDestroy();
  await until(() => s.clock.pending < pending, { what: "the waiting request's timer cancelled" });
  s.source.route(ring, () => undefined);
  s.clock.advance(5000);
  t.is(
    s.backends.reduce((n, b) => n + b.bytesSeen, 0),
    0,
  );
});

test("an h2 stream waits for its partition by the same rule: to the owner once ready; after handoffWait, 503 partition_moving, UNAVAILABLE for gRPC", async (t) => {
  const s = await setup(t, { handoffWait: 3000 });
  const ring = s.cluster.ring;
  const owner = ring.owner(s.partition, 0) as string;
  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const client = await session(`http://127.0.0.1:${s.port}`);
  t.teardown(() => closeSession(client));

  const waiting = request(client, s.key);
  await parsed(s, 1);
  s.clock.advance(2000);
  t.deepEqual(s.statuses, [], "no answer within the hand-off wait");
  s.source.route(ring, () => undefined);
  s.clock.advance(25);
  t.is((await waiting).status, 200);
  const [got] = s.backends.find((b) => b.name === owner)?.requests ?? [];
  t.truthy(got, "the owner got it");
  t.deepEqual(
    ["x-ringroute-partition", "x-ringroute-rank", "x-ringroute-version"].map((name) => got && header(got, name)),
    [String(s.partition), "0", "7"],
    "with the ownership headers, as HTTP/1.1 requests",
  );

  s.source.route(ring, (p) => (p === s.partition ? { member: undefined, state: "none" } : undefined));
  const moving = request(client, s.key);
  const call = request(client, s.key, { method: "POST", headers: { "content-type": "application/grpc" }, chunks: [] });
  await parsed(s, 3);
  s.clock.advance(2999);
  t.is(s.statuses.length, 1, "still waiting 1 ms before the wait ends");
  s.clock.advance(1);
  const [json, grpc] = await Promise.all([moving, call]);
  t.is(json.status, 503);
  t.is(json.headers["retry-after"], "3");
  t.like(json.json, { error: "partition_moving", partition: s.partition });
  t.true(grpc.headersOnly);
  t.is(grpc.headers["grpc-status"], "14", "UNAVAILABLE");
  t.is(
    s.backends.reduce((n, b) => n + b.requests.length, 0),
    1,
    "no member heard of the refused ones",
  );
});
