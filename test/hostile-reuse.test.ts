/**
 * Member connections go back to the pool only when both directions ended
 * cleanly: the whole request written and the whole response read. A member
 * that answers before the body arrived still expects the rest of it, so the
 * next request on that connection would be read as body (or, crafted, as a
 * request the proxy never parsed). Idle connections the member closed are
 * not picked, and a client that goes away mid-body frees its member at once.
 */
import test from "ava";
import {
  fixed,
  header,
  json,
  type Message,
  parse,
  type RawClient,
  Reports,
  scripts,
  startRawProxy,
} from "./helpers/raw.ts";
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

test("a client that sends FIN mid-body frees its member connection at once, without blaming the member", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.connections = 1;
      c.timeouts.body = 60_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  for (const how of ["FIN", "RST"] as const) {
    const upload = await h.connect();
    await upload.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n0123456789");
    await member.waitForRequests(how === "FIN" ? 1 : 2);
    if (how === "FIN") upload.finish();
    else upload.socket.resetAndDestroy();
    // Long before timeouts.body (60 s): the member's connection is closed and the one slot is free again.
    await until(() => member.connections.every((c) => c.closed), {
      what: `the member connection of the upload aborted by ${how} to close`,
      timeout: 10_000,
    });
    const get = await h.connect();
    await get.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    const [reply] = await get.waitForResponses(1, [], 10_000);
    t.is(reply?.status, 200, how);
    get.close();
  }
  t.deepEqual(reports.upstreamErrors, []);
  t.deepEqual(reports.clientErrors, ["aborted", "aborted"]);
  t.deepEqual(
    reports.records.filter((r) => r.method === "POST").map((r) => r.outcome),
    ["aborted", "aborted"],
  );
});

test("a client that resets while its whole request waits for the member frees the member connection at once", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.connections = 1;
      c.timeouts.response = 60_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  // The member never answers /wait: only the client's reset can end that exchange.
  member.script = {
    answer(request, c) {
      if (request.url !== "/wait") c.socket.write(fixed(200, "ok"));
    },
  };
  const waiting = await h.connect();
  await waiting.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  await member.waitForRequests(1);
  waiting.socket.resetAndDestroy();
  // Long before timeouts.response (60 s): the client socket is read while it waits, so the reset is seen.
  await until(() => member.connections.every((c) => c.closed), {
    what: "the member connection of the abandoned request to close",
    timeout: 10_000,
  });
  const get = await h.connect();
  await get.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await get.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 200);
  get.close();
  t.deepEqual(reports.upstreamErrors, []);
  t.deepEqual(reports.clientErrors, ["aborted"]);
  t.deepEqual(
    reports.records.filter((r) => r.path === "/wait").map((r) => [r.outcome, r.member]),
    [["aborted", "solo"]],
  );
});

test("a request waits timeouts.queue for a connection, then gets 503 with Retry-After", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.connections = 1;
      c.timeouts.queue = 300;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = {
    answer(request, c) {
      if (request.url !== "/slow") c.socket.write(fixed(200, "ok"));
    },
  };
  const slow = await h.connect();
  await slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await member.waitForRequests(1);
  const queued = await h.connect();
  await queued.send("GET /queued HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await queued.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 503);
  t.is(header(reply as Message, "retry-after"), "1");
  t.is(json(reply as Message).error, "queue_timeout");
  t.deepEqual(reports.queueTimeouts, ["solo"]);
  t.deepEqual(reports.upstreamErrors, [], "waiting for a connection is not the member's failure");
  t.deepEqual(
    member.requests.map((r) => r.url),
    ["/slow"],
  );
});

test("an idle connection the member closed (its keep-alive timeout) is not picked for the next request", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], { observer: reports });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = {
    answer(request, c) {
      c.socket.write(fixed(200, request.url));
      // Like nginx's keepalive_timeout: the member closes the connection soon after answering.
      setTimeout(() => c.socket.end(), 50);
    },
  };
  const client = await h.connect();
  for (let i = 0; i < 5; i++) {
    await client.send(`GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await client.waitForResponses(i + 1);
    await until(() => member.connections.every((c) => c.closed), { what: "the member to close its idle connection" });
  }
  const statuses = client.responses().messages.map((m) => m.status);
  t.deepEqual(statuses, [200, 200, 200, 200, 200]);
  t.deepEqual(reports.upstreamErrors, []);
  t.is(member.connections.length, 5, "one fresh connection for each request");
});

test("a kept-alive connection the member closes as the next request arrives: a GET is resent on a fresh connection", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], { observer: reports });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = {
    answer(request, c) {
      // The first request on each connection is answered; a second one finds the connection closing.
      if (c.requests.indexOf(request) === 0) c.socket.write(fixed(200, request.url));
      else c.socket.destroy();
    },
  };
  const client = await h.connect();
  await client.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.waitForResponses(1);
  await client.send("GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
  const replies = await client.waitForResponses(2);
  t.deepEqual(
    replies.map((m) => [m.status, m.body.toString()]),
    [
      [200, "/one"],
      [200, "/two"],
    ],
  );
  // At the member: /two on the reused connection (dropped), then again on a new one.
  t.deepEqual(
    member.connections.map((c) => c.requests.map((r) => r.url)),
    [["/one", "/two"], ["/two"]],
  );
  t.deepEqual(reports.upstreamErrors, [{ member: "solo", reason: "reset" }]);
  // The resend succeeded: the exchange is logged as ok, with both tries.
  t.like(reports.records[1], { path: "/two", status: 200, tried: 2, outcome: "ok" });
});
