/**
 * Limits on what a member sends: a response head over
 * `proxy.limits.responseHeaderBytes` or with more fields than
 * `proxy.limits.headers` ends the exchange with 502 and counts as
 * `bad_response`; whatever a member streams (an endless head, an endless
 * chunk-size line, an endless trailer), the proxy's memory stays flat.
 *
 * Serial: the memory tests read this process's RSS, which a concurrent test would disturb.
 */
import { connect, type Socket } from "node:net";
import test, { type ExecutionContext } from "ava";
import type { ProxyObserver, UpstreamFailure } from "../src/proxy/observer.ts";
import { json, type RawHarness, type Script, startRawProxy } from "./helpers/raw.ts";
import { until, within } from "./helpers/until.ts";

interface Recorded {
  errors: [string, UpstreamFailure][];
  statuses: number[];
}

async function proxy(t: ExecutionContext, limits: { headers?: number; responseHeaderBytes?: number } = {}) {
  const recorded: Recorded = { errors: [], statuses: [] };
  const observer: ProxyObserver = {
    request: (_member, _method, status) => recorded.statuses.push(status === "truncated" ? -1 : status),
    upstreamError: (member, reason) => recorded.errors.push([member, reason]),
    failover: () => {},
    ejection: () => {},
  };
  const h = await startRawProxy(["solo"], { observer, proxy: (c) => Object.assign(c.limits, limits) });
  t.teardown(() => h.close());
  return { h, recorded };
}

const request = "GET /k HTTP/1.1\r\nHost: x\r\n\r\n";

/** Checks the member got exactly the one request, as sent (plus this hop's X-Forwarded-*). */
function memberGotOneRequest(t: ExecutionContext, h: RawHarness): void {
  const member = h.backend("solo");
  t.deepEqual(member.errors, []);
  t.deepEqual(
    member.requests.map((r) => `${r.method} ${r.url} ${r.complete}`),
    ["GET /k true"],
  );
  t.is(
    member.connections.map((c) => c.bytes.toString("latin1")).join(""),
    "GET /k HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: x\r\n\r\n",
  );
}

test.serial("a response head with more fields than proxy.limits.headers gets 502 bad_response", async (t) => {
  const { h, recorded } = await proxy(t, { headers: 20 });
  const fields = Array.from({ length: 21 }, (_, i) => `X-${i}: v\r\n`).join("");
  h.backend("solo").script = {
    answer: (_r, c) => void c.socket.write(`HTTP/1.1 200 OK\r\n${fields}Content-Length: 0\r\n\r\n`),
  };
  const client = await h.connect();
  await client.send(request);
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 502, client.preview);
  t.is(json(reply as never).error, "bad_gateway");
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
  t.deepEqual(recorded.statuses, [502]);
  memberGotOneRequest(t, h);
  await until(() => h.backend("solo").open === 0, { what: "the member connection to be closed, not reused" });
});

test.serial("20 fields are within proxy.limits.headers: 20", async (t) => {
  const { h, recorded } = await proxy(t, { headers: 20 });
  const fields = Array.from({ length: 19 }, (_, i) => `X-${i}: v\r\n`).join("");
  h.backend("solo").script = {
    answer: (_r, c) => void c.socket.write(`HTTP/1.1 200 OK\r\n${fields}Content-Length: 2\r\n\r\nok`),
  };
  const client = await h.connect();
  await client.send(request);
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200, client.preview);
  t.deepEqual(recorded.errors, []);
});

test.serial("a response head over proxy.limits.responseHeaderBytes gets 502 bad_response", async (t) => {
  const { h, recorded } = await proxy(t, { responseHeaderBytes: 4096 });
  h.backend("solo").script = {
    answer: (_r, c) =>
      void c.socket.write(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(4096)}\r\nContent-Length: 0\r\n\r\n`),
  };
  const client = await h.connect();
  await client.send(request);
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 502, client.preview);
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
  memberGotOneRequest(t, h);
});

test.serial("a status line's reason phrase counts towards proxy.limits.responseHeaderBytes", async (t) => {
  const { h, recorded } = await proxy(t, { responseHeaderBytes: 4096 });
  h.backend("solo").script = {
    answer: (_r, c) => void c.socket.write(`HTTP/1.1 200 ${"O".repeat(8192)}\r\nContent-Length: 0\r\n\r\n`),
  };
  const client = await h.connect();
  await client.send(request);
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 502, client.preview);
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
});

/** A member script that writes `start`, then `filler` over and over until `cap` bytes or the proxy hangs up. */
function endless(start: string, filler: Buffer, cap: number, progress: { written: number; stopped: boolean }): Script {
  return {
    async answer(_request, c) {
      const socket = c.socket;
      socket.write(start);
      while (progress.written < cap && !socket.destroyed && socket.writable) {
        if (!socket.write(filler)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              socket.off("drain", done);
              socket.off("close", done);
              resolve();
            };
            socket.on("drain", done);
            socket.on("close", done);
          });
        }
        progress.written += filler.length;
      }
      progress.stopped = true;
    },
  };
}

/**
 * A client that keeps only the first and last 4 KB it receives and counts the rest,
 * so that what it reads does not count against the proxy's memory.
 */
async function countingClient(port: number) {
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  await within(new Promise((resolve) => socket.once("connect", resolve)), { what: "a connection to the proxy" });
  const state = { first: "", last: "", bytes: 0, closed: false };
  socket.on("data", (chunk: Buffer) => {
    if (state.first.length < 4096) state.first += chunk.toString("latin1", 0, 4096 - state.first.length);
    state.last = (state.last + chunk.toString("latin1", Math.max(0, chunk.length - 4096))).slice(-4096);
    state.bytes += chunk.length;
  });
  socket.on("error", () => {});
  socket.on("close", () => (state.closed = true));
  socket.write(request);
  return { socket, state };
}

/** Peak RSS growth (MB) while `running()` holds, sampled every 20 ms. */
async function peakGrowth(running: () => boolean, what: string): Promise<number> {
  const base = process.memoryUsage.rss();
  let peak = base;
  await until(
    () => {
      peak = Math.max(peak, process.memoryUsage.rss());
      return !running();
    },
    { what, timeout: 120_000, interval: 20 },
  );
  return (peak - base) / 2 ** 20;
}

const filler = Buffer.from(`X-a: ${"a".repeat(65_530)}\r\n`, "latin1");
/** Far more than any limit: a proxy that keeps what it is sent grows by at least this much. */
const cap = 256 * 2 ** 20;
const boundMb = 64;

test.serial("an endless response head: 502 at the limit, memory flat, the member hung up on", async (t) => {
  const { h, recorded } = await proxy(t);
  const progress = { written: 0, stopped: false };
  h.backend("solo").script = endless("HTTP/1.1 200 OK\r\n", filler, cap, progress);
  const { state } = await countingClient(h.port);
  const growth = await peakGrowth(() => !progress.stopped, "the member to stop writing its endless head");
  t.log(`RSS grew by ${growth.toFixed(1)} MB; the member wrote ${(progress.written / 2 ** 20).toFixed(1)} MB`);
  t.true(growth < boundMb, `RSS grew by ${growth.toFixed(1)} MB`);
  t.true(progress.written < cap, `the proxy read all ${progress.written} bytes instead of hanging up`);
  await until(() => state.first.includes("\r\n\r\n{"), { what: "the 502 to reach the client" });
  t.regex(state.first, /^HTTP\/1\.1 502 /);
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
  memberGotOneRequest(t, h);
});

test.serial("an endless trailer: the response is cut, memory flat, counted as bad_response", async (t) => {
  const { h, recorded } = await proxy(t);
  const progress = { written: 0, stopped: false };
  const start = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n";
  h.backend("solo").script = endless(start, filler, cap, progress);
  const { state } = await countingClient(h.port);
  const growth = await peakGrowth(() => !progress.stopped, "the member to stop writing its endless trailer");
  t.log(`RSS grew by ${growth.toFixed(1)} MB; the member wrote ${(progress.written / 2 ** 20).toFixed(1)} MB`);
  t.true(growth < boundMb, `RSS grew by ${growth.toFixed(1)} MB`);
  t.true(progress.written < cap, `the proxy read all ${progress.written} bytes instead of hanging up`);
  await until(() => state.closed, { what: "the client connection to be cut" });
  t.regex(state.first, /^HTTP\/1\.1 200 /);
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
  memberGotOneRequest(t, h);
});

test.serial("an endless chunk-size line: memory flat while it streams", async (t) => {
  const { h } = await proxy(t);
  const progress = { written: 0, stopped: false };
  const start = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  // Leading zeros never overflow the size, so llhttp reads them for as long as they come.
  const zeros = Buffer.alloc(65_536, "0");
  // Twice the bound: a proxy that kept what streams through could not stay under it.
  const streamed = 2 * boundMb * 2 ** 20;
  h.backend("solo").script = endless(start, zeros, streamed, progress);
  const { socket, state } = await countingClient(h.port);
  const growth = await peakGrowth(() => !progress.stopped, "the member to finish its endless chunk-size line");
  socket.destroy();
  t.log(`RSS grew by ${growth.toFixed(1)} MB; the member wrote ${(progress.written / 2 ** 20).toFixed(1)} MB`);
  t.true(growth < boundMb, `RSS grew by ${growth.toFixed(1)} MB`);
  t.true(state.bytes > 0);
  t.regex(state.first, /^HTTP\/1\.1 200 /);
  memberGotOneRequest(t, h);
});

test.serial("endless 103 Early Hints: the 1xx heads share the head budget, then 502", async (t) => {
  const { h, recorded } = await proxy(t);
  const progress = { written: 0, stopped: false };
  const hint = Buffer.from(
    `HTTP/1.1 103 Early Hints\r\nLink: </${"s".repeat(200)}.css>; rel=preload\r\n\r\n`,
    "latin1",
  );
  const hints = Buffer.concat(Array.from({ length: 256 }, () => hint));
  h.backend("solo").script = endless("", hints, cap, progress);
  const { state } = await countingClient(h.port);
  const growth = await peakGrowth(() => !progress.stopped, "the member to stop writing 103s");
  t.log(`RSS grew by ${growth.toFixed(1)} MB; the member wrote ${(progress.written / 2 ** 20).toFixed(1)} MB`);
  t.true(progress.written < cap, `the proxy read all ${progress.written} bytes instead of hanging up`);
  await until(() => /HTTP\/1\.1 502 [\s\S]*\}$/.test(state.last), { what: "the 502 after the 103s" });
  t.regex(state.first, /^HTTP\/1\.1 103 /);
  t.true(state.bytes < 128 * 1024, `the client got ${state.bytes} bytes of 1xx`);
  t.deepEqual(recorded.errors, [["solo", "bad_response"]]);
  t.deepEqual(recorded.statuses, [502]);
  memberGotOneRequest(t, h);
});
