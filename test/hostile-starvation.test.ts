/**
 * Stalled uploads cannot starve a member: requests still receiving their
 * bodies hold at most half of `proxy.connections`, so a request that is
 * whole always finds a connection (or waits only for whole requests ahead of
 * it). The cap on connections to the member stays hard.
 */
import test from "ava";
import { header, json, type RawClient, Reports, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

test("more stalled uploads than proxy.connections: a GET to the same member is answered while they stall; they get 408 at timeouts.body", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.timeouts.body = 3_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  const connections = 128; // the default proxy.connections
  const stalled: RawClient[] = [];
  for (let i = 0; i < connections + 12; i++) {
    const client = await h.connect();
    await client.send(`POST /upload/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789`);
    stalled.push(client);
  }
  await until(() => member.connections.length >= connections / 2, { what: "the uploads' share of connections" });

  const started = performance.now();
  const get = await h.connect();
  await get.send("GET /y HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await get.waitForResponses(1, [], 10_000);
  const ms = performance.now() - started;
  t.log(`GET answered in ${ms.toFixed(0)} ms behind ${stalled.length} stalled uploads`);
  t.is(reply?.status, 200);
  t.is(stalled.filter((c) => c.received.length > 0).length, 0, "no upload had been answered yet");
  // The cap holds: the uploads hold half the connections, the GET one more.
  t.is(member.connections.length, connections / 2 + 1);

  await Promise.all(stalled.map((c) => c.waitForEnd("the stalled upload to be cut", 20_000)));
  for (const c of stalled) {
    const [answer] = c.responses().messages;
    t.is(answer?.status, 408, c.preview);
    t.is(json(answer as never).error, "request_timeout");
    t.is(header(answer as never, "connection"), "close");
  }
  t.is(reports.clientErrors.filter((r) => r === "body_timeout").length, stalled.length);
  t.deepEqual(reports.upstreamErrors, []);
  for (const r of member.requests.filter((r) => r.method === "POST")) t.false(r.complete);
});

test("an upload that is whole is not held back by the uploads' share", async (t) => {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.connections = 2;
      c.timeouts.body = 30_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  const stalled = await h.connect();
  await stalled.send("POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n01234");
  const waiting = await h.connect();
  await waiting.send("POST /waiting HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n01234");
  // The second upload waits for the uploads' share (one of two connections); a whole POST goes ahead.
  await member.waitForRequests(1);
  const whole = await h.connect();
  await whole.send("POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  const [reply] = await whole.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 200);
  t.is(reply?.body.toString(), "solo POST /whole");
  // When the stalled upload finishes, its connection goes to the waiting one.
  await stalled.send("5".repeat(995));
  await stalled.waitForResponses(1);
  await waiting.send("5".repeat(995));
  const [last] = await waiting.waitForResponses(1, [], 10_000);
  t.is(last?.body.toString(), "solo POST /waiting");
  t.true(member.connections.length <= 2);
});
