/**
 * The timing rules of HTTP/2 streams, on a manual clock: a gRPC call's
 * grpc-timeout is its deadline (DEADLINE_EXCEEDED, the member's request
 * cut), a call that waits `timeouts.queue` for a member connection gets
 * RESOURCE_EXHAUSTED, a body that stalls gets 408 (the member's request
 * cut, the member not blamed), and an idle session gets GOAWAY.
 */
import test, { type ExecutionContext } from "ava";
import { Ring } from "../src/ring/ring.ts";
import { ManualClock } from "./helpers/clock.ts";
import { closeSession, type H2Reply, request, session } from "./helpers/h2.ts";
import { type RawHarness, type RawHarnessOptions, Reports, scripts, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

const names = ["alpha", "bravo", "charlie"];
const ring = Ring.build(names);

async function setup(
  t: ExecutionContext,
  options: RawHarnessOptions = {},
): Promise<RawHarness & { clock: ManualClock }> {
  const clock = new ManualClock();
  const h = await startRawProxy(names, { ...options, clock });
  t.teardown(async () => {
    // The proxy's shutdown deadline runs on the manual clock.
    const closing = h.proxy.close(100);
    clock.advance(200);
    await closing;
    await h.close();
  });
  for (const b of h.backends) b.script = scripts.hang();
  return { ...h, clock };
}

/** Whether `reply` settled yet (it must not, before its deadline). */
function watch(reply: Promise<H2Reply>): { done: boolean } {
  const state = { done: false };
  reply.then(
    () => (state.done = true),
    () => (state.done = true),
  );
  return state;
}

const grpc = { "content-type": "application/grpc", te: "trailers" };

test("grpc-timeout is the call's deadline: DEADLINE_EXCEEDED as trailers-only at it, not before; the member's request is cut", async (t) => {
  const h = await setup(t);
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const key = "/pkg.Svc/Method";
  const member = h.backend(ring.ownerOf(key) as string);
  const reply = request(client, key, { method: "POST", headers: { ...grpc, "grpc-timeout": "500m" }, chunks: ["x"] });
  const state = watch(reply);
  await member.waitForRequests(1);
  h.clock.advance(499);
  await new Promise((resolve) => setImmediate(resolve));
  t.false(state.done, "no answer 1 ms before the deadline");
  h.clock.advance(1);
  const got = await reply;
  t.true(got.headersOnly);
  t.is(got.status, 200);
  t.is(got.headers["grpc-status"], "4", "DEADLINE_EXCEEDED");
  await until(() => member.connections[0]?.closed, { what: "the member's connection cut" });
});

test("a call that waits timeouts.queue for a member connection gets RESOURCE_EXHAUSTED", async (t) => {
  const reports = new Reports();
  const h = await setup(t, {
    observer: reports,
    proxy: (c) => {
      c.connections = 1;
      c.timeouts.queue = 1000;
    },
  });
  const client = await session(`http://127.0.0.1:${h.port}`);
  // The first call never ends (its member hangs): the session is cut, not closed.
  t.teardown(() => client.destroy());
  const key = "/pkg.Svc/Method";
  const member = h.backend(ring.ownerOf(key) as string);
  // The first call holds the member's only connection.
  void request(client, key, { method: "POST", headers: grpc, chunks: ["x"] }).catch(() => {});
  await member.waitForRequests(1);
  const queued = request(client, key, { method: "POST", headers: grpc, chunks: ["y"] });
  await until(() => reports.started === 2, { what: "the second call read (and queued)" });
  h.clock.advance(900);
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(reports.queueTimeouts, [], "still queued before timeouts.queue");
  h.clock.advance(200);
  const got = await queued;
  t.true(got.headersOnly);
  t.is(got.headers["grpc-status"], "8", "RESOURCE_EXHAUSTED");
  t.deepEqual(reports.queueTimeouts, [member.name]);
  t.is(member.requests.length, 1, "the member never heard of the second call");
});

test("a body that stalls for timeouts.body gets 408 JSON; the member's request is cut and the member not blamed", async (t) => {
  const reports = new Reports();
  const h = await setup(t, {
    observer: reports,
    proxy: (c) => {
      c.timeouts.body = 1000;
    },
  });
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const key = "/upload/1";
  const member = h.backend(ring.ownerOf(key) as string);
  const stream = client.request({ ":method": "POST", ":path": key });
  stream.on("error", () => {});
  stream.resume();
  stream.write("part");
  const status = new Promise<number>((resolve) =>
    stream.on("response", (headers) => resolve(Number(headers[":status"]))),
  );
  await member.waitForRequests(1);
  await until(() => member.bytesSeen > 0 && member.connections[0]?.bytes.includes("part"), {
    what: "the first body bytes at the member",
  });
  h.clock.advance(1100);
  t.is(await status, 408);
  await until(() => member.connections[0]?.closed, { what: "the member's connection cut" });
  t.deepEqual(reports.clientErrors, ["body_timeout"]);
  t.deepEqual(reports.upstreamErrors, []);
});

test("a session with no stream open for timeouts.clientIdle gets GOAWAY", async (t) => {
  const h = await setup(t, {
    proxy: (c) => {
      c.timeouts.clientIdle = 2000;
    },
  });
  for (const b of h.backends) b.script = scripts.echo();
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  let goaway = false;
  client.on("goaway", () => (goaway = true));
  t.is((await request(client, "/a")).status, 200);
  h.clock.advance(1900);
  await new Promise((resolve) => setImmediate(resolve));
  t.false(goaway, "still open before the idle time");
  t.is((await request(client, "/b")).status, 200, "a stream restarts the idle time");
  h.clock.advance(1900);
  await new Promise((resolve) => setImmediate(resolve));
  t.false(goaway);
  h.clock.advance(200);
  await until(() => goaway, { what: "GOAWAY after the idle time" });
  await until(() => h.proxy.connections === 0, { what: "the session gone" });
});

test("half a preface, then silence: the connection is closed at timeouts.head, as a silent HTTP/1.1 one; no member hears of it", async (t) => {
  const h = await setup(t, {
    proxy: (c) => {
      c.timeouts.head = 3000;
    },
  });
  const client = await h.connect();
  await client.send("PRI * HTTP/2.0\r\n");
  h.clock.advance(2900);
  await new Promise((resolve) => setImmediate(resolve));
  t.false(client.ended, "still open before timeouts.head");
  h.clock.advance(200);
  await client.waitForEnd("the proxy closing the connection");
  t.is(client.received.length, 0, "nothing was answered: it never said which protocol it speaks");
  t.is(
    h.backends.reduce((n, b) => n + b.bytesSeen, 0),
    0,
  );
});

test("a client that stops reading its response is cut after timeouts.clientWrite: slow_reader, the member not blamed", async (t) => {
  const reports = new Reports();
  const h = await setup(t, {
    observer: reports,
    proxy: (c) => {
      c.timeouts.clientWrite = 5000;
    },
  });
  const big = Buffer.alloc(4 << 20, 120);
  for (const b of h.backends) {
    b.script = {
      answer(_request, c) {
        c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n`);
        c.socket.write(big);
      },
    };
  }
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => client.destroy());
  const stream = client.request({ ":path": "/big" });
  stream.on("error", () => {});
  stream.pause();
  const closed = new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? -1)));
  const member = h.backend(ring.ownerOf("/big") as string);
  await member.waitForRequests(1);
  // The client's window (64 KiB) fills, the proxy stops reading the member, and most of the 4 MiB stays with it.
  await until(() => (member.connections[0]?.socket.writableLength ?? 0) > 1 << 20, {
    what: "the member's response backed up (the proxy stopped reading it)",
  });
  h.clock.advance(4900);
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(reports.clientErrors, [], "not before timeouts.clientWrite");
  // The stall began when the proxy's stream stopped taking bytes, at or after the backlog was seen: step on.
  let rst: number | undefined;
  void closed.then((code) => (rst = code));
  for (let i = 0; i < 100 && rst === undefined; i++) {
    h.clock.advance(100);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.is(rst, 8, "RST_STREAM(CANCEL)");
  t.deepEqual(reports.clientErrors, ["slow_reader"]);
  t.deepEqual(reports.upstreamErrors, []);
  t.like(reports.records[0], { outcome: "slow_reader", truncated: true, protocol: "h2" });
  await until(() => member.connections[0]?.closed, { what: "the member's connection closed" });
});
