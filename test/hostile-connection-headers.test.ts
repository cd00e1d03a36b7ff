/**
 * Hop-by-hop hygiene: every `Connection` line's tokens name headers that stay
 * on their hop, both ways (RFC 9110 §7.6.1), and an HTTP/1.0 client never
 * sees a 1xx response of any kind (§15.2), nor does its `Expect:
 * 100-continue` reach the member (§10.1.1: it is ignored). Each test checks
 * what the client got and the exact bytes the member got.
 */
import test, { type ExecutionContext } from "ava";
import { fixed, head, header, parse, type RawHarness, scripts, startRawProxy } from "./helpers/raw.ts";

async function proxy(t: ExecutionContext): Promise<RawHarness> {
  // Without X-Forwarded-*, the member's bytes are exactly the client's minus what must not cross.
  const h = await startRawProxy(["solo"], { proxy: (c) => (c.headers.forwarded = false) });
  t.teardown(() => h.close());
  return h;
}

/** Every byte the member received, over all its connections. */
function memberBytes(h: RawHarness): string {
  return h
    .backend("solo")
    .connections.map((c) => c.bytes.toString("latin1"))
    .join("");
}

test("headers named by any of several Connection lines do not reach the member", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: x-secret\r\nX-Secret: s\r\nX-Other: o\r\nConnection: keep-alive, X-Private\r\nX-Private: p\r\n\r\n",
  );
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200, client.preview);
  t.is(memberBytes(h), "GET /x HTTP/1.1\r\nHost: x\r\nX-Other: o\r\n\r\n");
});

test("headers named by any of several Connection lines in a response do not reach the client", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = scripts.raw(
    fixed(200, "ok", [
      ["Connection", "x-secret"],
      ["X-Secret", "s"],
      ["X-Kept", "k"],
      ["Connection", "keep-alive"],
      ["X-Private", "p"],
      ["Connection", "x-private"],
    ]),
  );
  const client = await h.connect();
  await client.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200, client.preview);
  t.is(header(reply as never, "x-kept"), "k");
  t.is(header(reply as never, "x-secret"), undefined, client.preview);
  t.is(header(reply as never, "x-private"), undefined, client.preview);
  t.is(reply?.body.toString(), "ok");
  t.is(memberBytes(h), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
});

/** A member that sends 103 Early Hints and 100 Continue before its answer. */
const hinting = scripts.raw(
  `${head(103, "Early Hints", [["Link", "</s.css>; rel=preload"]])}${head(100, "Continue", [])}${fixed(200, "done")}`,
);

test("an HTTP/1.0 client gets no 1xx of any kind, only the final response", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = hinting;
  const client = await h.connect();
  await client.send("GET /x HTTP/1.0\r\nHost: x\r\n\r\n");
  await client.waitForEnd("the proxy to close the HTTP/1.0 connection after its response");
  t.true(client.text.startsWith("HTTP/1.1 200 "), client.preview);
  const { messages, error } = client.responses();
  t.is(error, undefined);
  t.deepEqual(
    messages.map((m) => m.status),
    [200],
    client.preview,
  );
  t.is(messages[0]?.body.toString(), "done");
  t.is(memberBytes(h), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
});

test("an HTTP/1.1 client still gets a member's 103 (and no 100 it did not ask for)", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = hinting;
  const client = await h.connect();
  await client.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.waitForResponses(1);
  const { messages } = parse("response", client.received);
  t.deepEqual(
    messages.map((m) => m.status),
    [103, 200],
    client.preview,
  );
  t.is(header(messages[0] as never, "link"), "</s.css>; rel=preload");
});

test("Expect: 100-continue from an HTTP/1.0 client is ignored: not forwarded, no 100 back", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = hinting;
  const client = await h.connect();
  await client.send("POST /x HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
  await client.waitForEnd("the proxy to close the HTTP/1.0 connection after its response");
  const { messages, error } = client.responses();
  t.is(error, undefined);
  t.deepEqual(
    messages.map((m) => m.status),
    [200],
    client.preview,
  );
  t.is(memberBytes(h), "POST /x HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello");
});

test("Expect: 100-continue from an HTTP/1.1 client reaches the member and its 100 comes back", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = hinting;
  const client = await h.connect();
  await client.send("POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
  await client.waitForResponses(1);
  const { messages } = parse("response", client.received);
  t.deepEqual(
    messages.map((m) => m.status),
    [103, 100, 200],
    client.preview,
  );
  t.is(memberBytes(h), "POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\ncontent-length: 5\r\n\r\nhello");
});

test("a Connection header cannot strip framing or Host: the response keeps its Content-Length, the request its Host", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = scripts.raw(
    fixed(200, "ok", [
      ["Connection", "content-length, transfer-encoding"],
      ["X-Kept", "k"],
    ]),
  );
  const client = await h.connect();
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: host, content-length\r\nContent-Length: 2\r\n\r\nhi");
  await client.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  const replies = await client.waitForResponses(2);
  t.deepEqual(
    replies.map((r) => [r.status, header(r, "content-length"), r.body.toString()]),
    [
      [200, "2", "ok"],
      [200, "2", "ok"],
    ],
    client.preview,
  );
  t.is(memberBytes(h), "GET /a HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
});

test("Upgrade from an HTTP/1.0 client is ignored (RFC 9110 §7.8): a plain request, no 101 back", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("GET /ws HTTP/1.0\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  await client.waitForEnd("the proxy to close the HTTP/1.0 connection after its response");
  const { messages } = client.responses();
  t.deepEqual(
    messages.map((m) => m.status),
    [200],
    client.preview,
  );
  t.is(memberBytes(h), "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
});

test("a member that answers 101 to an HTTP/1.0 client's request gets 502, not a tunnel", async (t) => {
  const h = await proxy(t);
  h.backend("solo").script = scripts.switching("websocket");
  const client = await h.connect();
  await client.send("GET /ws HTTP/1.0\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  await client.waitForEnd("the proxy to close the HTTP/1.0 connection after its response");
  const { messages } = client.responses();
  t.deepEqual(
    messages.map((m) => m.status),
    [502],
    client.preview,
  );
});
