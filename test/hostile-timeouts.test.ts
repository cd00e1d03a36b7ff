/**
 * Clients and members that stall or fail slowly: no client holds a member
 * connection past the body-idle timeout, a stalled body gets 408 and is not
 * retried, and a member that breaks its responses after the headers is
 * ejected like any other failing member.
 */
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { header, json, type RawClient, scripts, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

/** Keys (paths) whose primary owner is `member`. */
function keysOwnedBy(names: string[], member: string, count: number): string[] {
  const ring = Ring.build(names);
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (ring.ownerOf(`/k/${i}`) === member) keys.push(`/k/${i}`);
  return keys;
}

async function expect408(client: RawClient): Promise<void> {
  await client.waitForEnd("the proxy to cut the stalled upload", 10_000);
  const [reply] = client.responses().messages;
  if (reply?.status !== 408) throw new Error(`expected 408, got ${JSON.stringify(client.preview)}`);
  if (!/^application\/json/.test(header(reply, "content-type") ?? "")) throw new Error("408 without a JSON body");
  json(reply);
}

test("more stalled uploads than proxy.connections: a GET to the same member still succeeds, and each upload gets 408", async (t) => {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.connections = 4;
      c.timeouts.body = 300;
      c.timeouts.head = 10_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  const stalled: RawClient[] = [];
  for (let i = 0; i < 10; i++) {
    const client = await h.connect();
    await client.send(`POST /upload/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789`);
    stalled.push(client);
  }
  const get = await h.connect();
  await get.send("GET /y HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await get.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 200);
  t.is(reply?.body.toString(), "solo GET /y");

  await Promise.all(stalled.map((client) => expect408(client)));
  t.pass("every stalled upload got 408 JSON and was closed");

  // At the member: the GET arrived whole; no upload ever did, and every connection that carried one was closed.
  const requests = member.requests;
  t.true(requests.some((r) => r.url === "/y" && r.complete));
  for (const r of requests.filter((r) => r.method === "POST")) t.false(r.complete, `${r.url} never completed`);
  await until(
    () => member.connections.filter((c) => c.requests.some((r) => r.method === "POST")).every((c) => c.closed),
    { what: "every member connection that carried a stalled upload to be closed", timeout: 10_000 },
  );
  // A cut upload ends mid-body at the member: that EOF is the only error it may see.
  t.deepEqual(
    member.errors.filter((e) => !e.startsWith("HPE_INVALID_EOF_STATE")),
    [],
  );
});

test("a stalled PUT is cut with 408 and not retried on the next member", async (t) => {
  const names = ["alpha", "bravo"];
  const h = await startRawProxy(names, {
    proxy(c) {
      c.timeouts.body = 300;
    },
  });
  t.teardown(() => h.close());
  const [key] = keysOwnedBy(names, "alpha", 1);
  const client = await h.connect();
  await client.send(`PUT ${key} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc`);
  await expect408(client);
  // bravo's first request is one sent to it on purpose afterwards: the PUT never went there.
  const [bravoKey] = keysOwnedBy(names, "bravo", 1);
  const after = await h.connect();
  await after.send(`GET ${bravoKey} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await after.waitForResponses(1);
  t.deepEqual(
    h.backend("bravo").requests.map((r) => `${r.method} ${r.url}`),
    [`GET ${bravoKey}`],
  );
  const alpha = h.backend("alpha");
  t.deepEqual(
    alpha.requests.map((r) => `${r.method} ${r.url} ${r.complete}`),
    [`PUT ${key} false`],
  );
  await until(() => alpha.connections.every((c) => c.closed), {
    what: "the member connection of the aborted PUT to close",
    timeout: 10_000,
  });
  t.is(alpha.requests[0]?.body.toString(), "abc");
});

test("a member that resets after its response headers is ejected after eject.after failures", async (t) => {
  const names = ["alpha", "bravo"];
  const h = await startRawProxy(names, {
    proxy(c) {
      c.eject = { after: 3, for: 60_000 };
    },
  });
  t.teardown(() => h.close());
  const alpha = h.backend("alpha");
  alpha.script = scripts.resetAfterHeaders();
  for (const key of keysOwnedBy(names, "alpha", 6)) {
    const client = await h.connect();
    await client.send(`GET ${key} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await until(() => client.ended || client.responses().messages.some((m) => m.complete), {
      what: `an answer or a cut for ${key}`,
      timeout: 10_000,
    });
    const parsed = client.responses();
    // Whatever the client got, it is never alpha's broken response passed off as complete.
    for (const m of parsed.messages) t.not(m.complete && m.body.length === 1000, true, client.preview);
    client.close();
  }
  t.is(alpha.requests.length, 3, "three failures, then alpha is skipped");
  t.deepEqual(h.proxy.ejected(), ["alpha"]);
});

test("a close-delimited response ended by the member's FIN alone (half-close) reaches the client whole", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  h.backend("solo").script = {
    answer(_request, c) {
      // FIN only: the member keeps reading, as a half-closing server may.
      c.socket.end("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
    },
  };
  const client = await h.connect();
  await client.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await client.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 200);
  t.is(reply?.body.toString(), "all of it");
});
