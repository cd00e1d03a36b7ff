/**
 * Member connections go back to the pool only when both directions ended
 * cleanly: the whole request written and the whole response read. A member
 * that answers before the body arrived still expects the rest of it, so the
 * next request on that connection would be read as body (or, crafted, as a
 * request the proxy never parsed). Idle connections the member closed are
 * not picked, and a client that goes away mid-body frees its member at once.
 */
import test from "ava";
import { fixed, parse, type RawClient, scripts, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

test("an early response: the member connection still expecting body bytes is closed, and the next client's request reaches the member as itself", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  // Like any correct server: answers at once, then would discard the body by its Content-Length.
  member.script = { ...scripts.raw(fixed(401, "no")), early: true };

  for (let round = 0; round < 5; round++) {
    const first = await h.connect();
    await first.send(`POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n0123456789`);
    const [early] = await first.waitForResponses(1);
    t.is(early?.status, 401, "the early response is passed on");
    await first.waitForEnd("the proxy to close the client whose body is unread");
    first.close();

    const second = await h.connect();
    await second.send(`GET /x?y${round} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const [answer] = await second.waitForResponses(1);
    t.is(answer?.status, 401);
    second.close();
  }

  await until(() => member.connections.filter((c) => c.closed).length >= 5, {
    what: "the five connections that carried an unfinished POST to be closed",
    timeout: 10_000,
  });
  for (const c of member.connections) {
    const { messages, rest, error } = parse("request", c.bytes);
    t.is(error, undefined);
    t.is(rest.length, 0);
    // Complete GETs, then at most one POST: its head and the 10 body bytes, and nothing after (then closed).
    const last = messages.at(-1);
    const before = last?.method === "POST" ? messages.slice(0, -1) : messages;
    for (const m of before) t.true(m.method === "GET" && /^\/x\?y\d$/.test(m.url) && m.complete, m.url);
    if (last?.method === "POST") {
      t.deepEqual([last.url, last.complete, last.body.toString()], ["/x", false, "0123456789"]);
      t.true(c.closed);
    }
  }
  t.is(member.requests.filter((m) => m.method === "POST").length, 5);
  const gets = member.requests.filter((m) => m.method === "GET").map((m) => m.url);
  t.deepEqual(gets.sort(), ["/x?y0", "/x?y1", "/x?y2", "/x?y3", "/x?y4"], "every GET reached the member as itself");
});

test("a response completed after the whole request: the connection is reused", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  const clients: RawClient[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await h.connect();
    await client.send(`POST /p${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`);
    await client.waitForResponses(1);
    clients.push(client);
  }
  t.is(member.connections.length, 1, "one member connection carried all three");
  t.deepEqual(
    member.requests.map((r) => [r.url, r.body.toString(), r.complete]),
    [
      ["/p0", "abc", true],
      ["/p1", "abc", true],
      ["/p2", "abc", true],
    ],
  );
});
