import { setTimeout as sleep } from "node:timers/promises";
import test from "ava";
import type { ProxyObserver, UpstreamFailure } from "../src/proxy/observer.ts";
import { Ring } from "../src/ring/ring.ts";
import { send, startProxy } from "./helpers/backends.ts";

const names = ["alpha", "bravo", "charlie", "delta"];

/** Records what the proxy reports, to count failures without timing. */
class Recorder implements ProxyObserver {
  errors: { member: string; reason: UpstreamFailure }[] = [];
  failovers = 0;
  ejections: string[] = [];
  statuses: number[] = [];
  request(_member: string, _method: string, status: number): void {
    this.statuses.push(status);
  }
  upstreamError(member: string, reason: UpstreamFailure): void {
    this.errors.push({ member, reason });
  }
  failover(): void {
    this.failovers++;
  }
  ejection(member: string): void {
    this.ejections.push(member);
  }
}

/** Keys whose primary owner is `member`. */
function keysOwnedBy(ring: Ring, member: string, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (ring.ownerOf(`/k/${i}`) === member) keys.push(`/k/${i}`);
  return keys;
}

test("with a killed backend no GET fails: each goes to the next member of its preference list", async (t) => {
  const recorder = new Recorder();
  const h = await startProxy(names, { observer: recorder, proxy: (c) => (c.eject.after = 1000) });
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const victim = "bravo";
  const keys = keysOwnedBy(ring, victim, 12);
  // Warm the pool so the killed backend leaves stale keep-alive connections behind.
  for (const key of keys) t.is((await send(h.url, key)).json.backend, victim);
  await h.backend(victim).kill();

  const replies = await Promise.all(keys.map((key) => send(h.url, key)));
  for (const [i, reply] of replies.entries()) {
    const expected = ring.preferenceList(keys[i] as string).find((m) => m !== victim);
    t.is(reply.status, 200, reply.text);
    t.is(reply.json.backend, expected, keys[i]);
  }
  t.true(recorder.failovers >= keys.length);
  t.true(recorder.errors.every((e) => e.member === victim && (e.reason === "connect" || e.reason === "reset")));
});

test("a member failing K times in a row is ejected: skipped, with the ring unchanged", async (t) => {
  const recorder = new Recorder();
  const h = await startProxy(names, { observer: recorder, proxy: (c) => (c.eject = { after: 3, for: 60_000 }) });
  t.teardown(() => h.close());
  const checksum = h.cluster.ring.checksum;
  const victim = "charlie";
  await h.backend(victim).kill();
  const keys = keysOwnedBy(h.cluster.ring, victim, 10);
  for (const key of keys) t.is((await send(h.url, key)).status, 200);
  t.is(recorder.errors.filter((e) => e.member === victim).length, 3, "tried until ejected, then skipped");
  t.deepEqual(recorder.ejections, [victim]);
  t.deepEqual(h.proxy.ejected(), [victim]);
  t.is(h.cluster.ring.checksum, checksum, "no partition moved");
});

test("when every member is ejected the primary is tried anyway rather than answering 503", async (t) => {
  const recorder = new Recorder();
  const h = await startProxy(["solo"], { observer: recorder, proxy: (c) => (c.eject = { after: 2, for: 60_000 }) });
  t.teardown(() => h.close());
  let calls = 0;
  const [solo] = h.backends;
  if (solo === undefined) throw new Error("no backend");
  solo.handler = (_req, res) => {
    calls++;
    res.writeHead(calls <= 2 ? 503 : 200, { "content-type": "text/plain" });
    res.end(calls <= 2 ? "busy" : "ok");
  };
  t.is((await send(h.url, "/x")).status, 503, "no other member: the member's own 503 is relayed");
  t.is((await send(h.url, "/x")).status, 503);
  t.deepEqual(h.proxy.ejected(), ["solo"]);
  const reply = await send(h.url, "/x");
  t.is(reply.status, 200);
  t.is(reply.text, "ok");
});

test("a 502 or 503 from a member moves an idempotent request on; a POST gets the member's answer", async (t) => {
  const recorder = new Recorder();
  const h = await startProxy(names, { observer: recorder });
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const victim = h.backend("alpha");
  victim.handler = (req, res) => {
    req.resume();
    res.writeHead(503, { "content-type": "text/plain", "retry-after": "1" });
    res.end("overloaded");
  };
  const [key] = keysOwnedBy(ring, "alpha", 1) as [string];
  const get = await send(h.url, key);
  t.is(get.status, 200);
  t.is(get.json.backend, ring.preferenceList(key)[1]);
  const post = await send(h.url, key, { method: "POST", body: "order" });
  t.is(post.status, 503);
  t.is(post.text, "overloaded");
  t.is(recorder.failovers, 1);
});

test("a POST is resent after a refused connection, since no member saw it", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  await h.backend("delta").kill();
  const [key] = keysOwnedBy(ring, "delta", 1) as [string];
  const reply = await send(h.url, key, { method: "POST", body: "hello" });
  t.is(reply.status, 200);
  t.is(reply.json.bodyLength, 5);
  t.is(reply.json.backend, ring.preferenceList(key)[1]);
});

test("a request whose body was already streamed is not retried: 502 with a JSON body", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const victim = h.backend("alpha");
  // Reads the whole body, then drops the connection without answering.
  victim.handler = (req, res) => {
    req.resume();
    req.on("end", () => res.socket?.destroy());
  };
  const [key] = keysOwnedBy(ring, "alpha", 1) as [string];
  const body = Buffer.alloc(256 * 1024, 1);
  const put = await send(h.url, key, { method: "PUT", body });
  t.is(put.status, 502);
  t.is(put.json.error, "body_not_replayable");
  t.is(put.json.tried, 1, "only the owner was tried");
  const post = await send(h.url, key, { method: "POST", body });
  t.is(post.status, 502);
  t.is(post.json.tried, 1);
  const others = h.backends.filter((b) => b.name !== "alpha");
  t.is(
    others.reduce((n, b) => n + b.seen.length, 0),
    0,
    "no other member received a partial replay",
  );
});

test("no live member: 503 with a JSON body", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  h.source.set([]);
  const reply = await send(h.url, "/anything");
  t.is(reply.status, 503);
  t.is(reply.json.error, "no_members");
});

test("a member that does not answer within the response timeout gets 504 with a JSON body", async (t) => {
  const h = await startProxy(names, { proxy: (c) => (c.timeouts.response = 300) });
  t.teardown(() => h.close());
  for (const b of h.backends) b.handler = () => {}; // never answers
  const reply = await send(h.url, "/slow");
  t.is(reply.status, 504);
  t.is(reply.json.error, "upstream_timeout");
  t.is(reply.json.partition, Ring.build(names).partitionOf("/slow"));
  t.is(reply.json.tried, 1);
  t.is(
    h.backends.reduce((n, b) => n + b.seen.length, 0),
    1,
    "a timeout is not retried by default",
  );
});

test("retry.attempts bounds how many members a request tries", async (t) => {
  const recorder = new Recorder();
  const h = await startProxy(names, { observer: recorder, proxy: (c) => (c.retry.attempts = 1) });
  t.teardown(() => h.close());
  for (const b of h.backends) {
    b.handler = (_req, res) => {
      res.writeHead(502);
      res.end("down");
    };
  }
  const reply = await send(h.url, "/z");
  t.is(reply.status, 502);
  await sleep(50);
  t.is(
    h.backends.reduce((n, b) => n + b.seen.length, 0),
    2,
    "the owner and one more",
  );
  t.is(recorder.failovers, 1);
});
