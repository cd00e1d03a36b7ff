/**
 * Request smuggling: a request whose framing two parsers could read two ways
 * must reach the member with one canonical framing, or not at all. Each
 * test checks what the client got and every byte the member received.
 */
import test, { type ExecutionContext } from "ava";
import { header, headerValues, json, type Message, parse, type RawHarness, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

async function proxy(t: ExecutionContext): Promise<RawHarness> {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  return h;
}

/**
 * Sends `bytes` on a new connection; expects a 400 and the connection
 * closed (the JSON body is checked once, below). Then, to show nothing of it
 * reached the member, sends a plain GET on a new connection and checks that
 * it is the only complete request the member ever received. With `brokenBody`
 * (the head is valid, only the body breaks) a streaming proxy may have passed
 * the head on: the member may hold that head, never a complete request, and
 * the connection that carried it must be closed.
 */
async function rejected(t: ExecutionContext, bytes: string, brokenBody = false): Promise<void> {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(bytes);
  await client.waitForEnd("the proxy to close after refusing");
  const { messages } = client.responses();
  t.is(messages.length, 1, client.preview);
  t.is(messages[0]?.status, 400, client.preview);

  const after = await h.connect();
  await after.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await after.waitForResponses(1);
  t.is(reply?.status, 200);
  const member = h.backend("solo");
  t.deepEqual(
    member.requests.filter((r) => r.complete).map((r) => `${r.method} ${r.url}`),
    ["GET /after"],
    "only the later GET reached the member whole",
  );
  const partial = member.connections.filter((c) => c.requests.some((r) => !r.complete));
  if (brokenBody) {
    await until(() => partial.every((c) => c.closed), {
      what: "the member connection holding the broken request's head to close",
      timeout: 10_000,
    });
  } else {
    t.deepEqual(partial, [], "not even a head reached the member");
  }
  // A head passed on and then cut shows at the member as a request ended early, nothing else.
  t.deepEqual(
    member.errors.filter((e) => !e.startsWith("HPE_INVALID_EOF_STATE")),
    [],
  );
  for (const c of member.connections) t.is(c.parser.rest.length, 0, "no bytes beyond the parsed requests");
}

/** The one request the member got, checked to be the only bytes on its connections. */
function onlyRequest(t: ExecutionContext, h: RawHarness): Message {
  const member = h.backend("solo");
  t.deepEqual(member.errors, [], "the member read strict HTTP");
  const all = member.connections.map((c) => parse("request", c.bytes));
  t.is(all.flatMap((p) => p.messages).length, 1, "exactly one request on the wire");
  for (const p of all) t.is(p.rest.length, 0);
  return member.requests[0] as Message;
}

test("Content-Length then Transfer-Encoding: refused, nothing forwarded", async (t) => {
  await rejected(
    t,
    "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
  );
});

test("Transfer-Encoding then Content-Length: refused, nothing forwarded", async (t) => {
  await rejected(
    t,
    "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
  );
});

test("two differing Content-Lengths: refused", async (t) => {
  await rejected(t, "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd");
});

test("a Content-Length list with differing values: refused", async (t) => {
  await rejected(t, "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 40\r\n\r\nabcd");
});

test("Transfer-Encoding: chunked, identity (chunked not last): refused", async (t) => {
  await rejected(
    t,
    "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
  );
});

test("Transfer-Encoding: xchunked: refused", async (t) => {
  await rejected(t, "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
});

test("a Transfer-Encoding folded onto a second line (obs-fold): refused", async (t) => {
  await rejected(
    t,
    "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
  );
});

test("an obs-folded ordinary header: refused", async (t) => {
  await rejected(t, "GET /s HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n");
});

test("header lines ending in a bare LF: refused", async (t) => {
  await rejected(t, "GET /s HTTP/1.1\nHost: x\nX-A: 1\n\n");
});

test("a chunk size that overflows 64 bits: refused", async (t) => {
  await rejected(
    t,
    "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000004\r\nabcd\r\n0\r\n\r\n",
    true,
  );
});

test("a chunk size that is not hex: refused", async (t) => {
  await rejected(t, "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4g\r\nabcd\r\n0\r\n\r\n", true);
});

test("a GET whose body holds a whole request reaches the member as one GET with that body", async (t) => {
  const h = await proxy(t);
  const inner = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  const client = await h.connect();
  await client.send(`GET /outer HTTP/1.1\r\nHost: x\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`);
  const replies = await client.waitForResponses(1);
  t.is(replies.length, 1, client.preview);
  t.is(replies[0]?.status, 200);
  t.is(replies[0]?.body.toString(), "solo GET /outer");
  const request = onlyRequest(t, h);
  t.is(request.url, "/outer");
  t.is(request.body.toString("latin1"), inner);
  t.deepEqual(headerValues(request, "content-length"), [String(inner.length)]);
  t.deepEqual(headerValues(request, "transfer-encoding"), []);
});

test("a chunked POST arrives with the same body and exactly one framing header", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
  );
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200);
  const request = onlyRequest(t, h);
  t.is(request.body.toString(), "abcdef");
  // Passed through chunked, or re-framed with its length: either is canonical, never both.
  const framing = [...headerValues(request, "content-length"), ...headerValues(request, "transfer-encoding")];
  t.true(framing.length === 1 && (framing[0] === "6" || framing[0]?.toLowerCase() === "chunked"), String(framing));
});

// Fails on today's main (a bare 400 with no body): flip to test() when the new engine lands.
test("the 400 for a smuggling attempt is JSON", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  await client.waitForEnd();
  const [reply] = client.responses().messages;
  t.is(reply?.status, 400);
  t.regex(header(reply as Message, "content-type") ?? "", /^application\/json/);
  t.is(typeof json(reply as Message).error, "string");
});

test("a chunked body that breaks after its head was forwarded: 400, and the member connection is closed", async (t) => {
  const h = await proxy(t);
  const member = h.backend("solo");
  const client = await h.connect();
  await client.send("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n");
  await member.waitForRequests(1);
  await client.send("zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.waitForEnd("the proxy to close after the broken chunk", 10_000);
  const [reply] = client.responses().messages;
  t.is(reply?.status, 400, client.preview);
  await until(() => member.connections.every((c) => c.closed), {
    what: "the member connection holding the broken request to close",
    timeout: 10_000,
  });
  t.deepEqual(
    member.requests.map((r) => `${r.method} ${r.url} ${r.complete}`),
    ["POST /b false"],
  );
  t.deepEqual(member.errors, ["HPE_INVALID_EOF_STATE: Invalid EOF state"], "the member saw its request cut short");
});
