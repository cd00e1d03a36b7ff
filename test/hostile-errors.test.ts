/**
 * Client errors on a connection: each is answered with the right 4xx and a
 * JSON body, only after every earlier pipelined response is complete, and
 * then the connection closes. Nothing of a refused request reaches the
 * member, and no request pipelined behind it is executed.
 */
import test, { type ExecutionContext } from "ava";
import { header, json, type Message, type RawClient, type RawHarness, scripts, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

async function proxy(t: ExecutionContext): Promise<RawHarness> {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.timeouts.head = 300;
      c.timeouts.body = 300;
      c.timeouts.clientIdle = 300;
    },
  });
  t.teardown(() => h.close());
  return h;
}

/** Checks `reply` is ringroute's own JSON error with this status. */
function jsonError(t: ExecutionContext, reply: Message | undefined, status: number): void {
  t.is(reply?.status, status, reply === undefined ? "no response" : reply.body.toString("latin1"));
  if (reply === undefined) return;
  t.regex(header(reply, "content-type") ?? "", /^application\/json/);
  t.is(typeof json(reply).error, "string");
}

/**
 * Sends a GET on a new connection and waits for its response; returns the
 * targets the member received, in order. Anything the proxy forwarded from
 * an earlier connection reached the member before this.
 */
async function memberTargets(h: RawHarness): Promise<string[]> {
  const after = await h.connect();
  await after.send("GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  await after.waitForResponses(1);
  return h.backend("solo").requests.map((r) => `${r.method} ${r.url}`);
}

/** Waits for the connection to close and returns every response on it. */
async function allResponses(client: RawClient, methods: string[] = []): Promise<Message[]> {
  await client.waitForEnd("the proxy to close the connection after the error", 10_000);
  const parsed = client.responses(methods);
  if (parsed.error !== undefined) throw new Error(`${parsed.error} in ${JSON.stringify(client.preview)}`);
  return parsed.messages;
}

/** `bad` pipelined between two good GETs: /a is answered in full, then the error, then close; /c never runs. */
async function pipelinedBehindGood(t: ExecutionContext, bad: string, status = 400): Promise<void> {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(`GET /a HTTP/1.1\r\nHost: x\r\n\r\n${bad}GET /c HTTP/1.1\r\nHost: x\r\n\r\n`);
  const replies = await allResponses(client);
  t.is(replies.length, 2, client.preview);
  t.is(replies[0]?.status, 200);
  t.is(replies[0]?.body.toString(), "solo GET /a");
  jsonError(t, replies[1], status);
  t.deepEqual(await memberTargets(h), ["GET /a", "GET /after"]);
}

test("a bad request line behind a slow response: the response arrives whole, then 400 JSON, then close", async (t) => {
  const h = await proxy(t);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  h.backend("solo").script = scripts.slow(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", "world"], (i) =>
    i === 0 ? Promise.resolve() : released,
  );
  const client = await h.connect();
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nBAD REQUEST LINE\r\n\r\n");
  await until(() => client.text.includes("hello") || client.ended, { what: "the first half of the response" });
  release();
  const replies = await allResponses(client);
  t.is(replies.length, 2, client.preview);
  t.is(replies[0]?.status, 200);
  t.is(replies[0]?.body.toString(), "helloworld");
  jsonError(t, replies[1], 400);
  t.deepEqual(await memberTargets(h), ["GET /a", "GET /after"]);
});

test("a POST the member executed is answered with its response, not with the 400 of what follows it", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiBAD REQUEST LINE\r\n\r\n");
  const replies = await allResponses(client);
  t.is(replies.length, 2, client.preview);
  t.is(replies[0]?.body.toString(), "solo POST /p");
  jsonError(t, replies[1], 400);
  const [post] = h.backend("solo").requests;
  t.is(post?.body.toString(), "hi");
});

test("a request without Host behind a good one: 200, then 400 JSON, then close", async (t) => {
  await pipelinedBehindGood(t, "GET /b HTTP/1.1\r\n\r\n");
});

test("an HTTP/2.0 request line behind a good one: 200, then 400 JSON, then close", async (t) => {
  await pipelinedBehindGood(t, "GET /b HTTP/2.0\r\nHost: x\r\n\r\n");
});

test("a duplicate Host behind a good one: 200, then 400 JSON, then close", async (t) => {
  await pipelinedBehindGood(t, "GET /b HTTP/1.1\r\nHost: x\r\nHost: evil.example\r\n\r\n");
});

test("CONNECT gets a JSON 405 (or 501) and reaches no member", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n");
  await until(() => client.responses(["CONNECT"]).messages.some((m) => m.complete) || client.ended, {
    what: "an answer to CONNECT",
    timeout: 10_000,
  });
  const [reply] = client.responses(["CONNECT"]).messages;
  t.true(reply?.status === 405 || reply?.status === 501, client.preview);
  jsonError(t, reply, reply?.status ?? 405);
  client.close();
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("OPTIONS * is forwarded to a member as OPTIONS * or answered by ringroute, never a 502", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await client.waitForResponses(1, ["OPTIONS"], 10_000);
  const targets = await memberTargets(h);
  if (targets.length === 2) {
    t.deepEqual(targets, ["OPTIONS *", "GET /after"]);
    t.is(reply?.status, 200);
    t.is(reply?.body.toString(), "solo OPTIONS *");
  } else {
    t.deepEqual(targets, ["GET /after"]);
    t.true(reply !== undefined && reply.status >= 200 && reply.status < 300, client.preview);
  }
});

/** A request with `count` header fields in all, Host included. */
function withFields(count: number): string {
  const fields = Array.from({ length: count - 1 }, (_, i) => `X-H-${i}: ${i}\r\n`).join("");
  return `GET /h HTTP/1.1\r\nHost: x\r\n${fields}\r\n`;
}

test("100 header fields (the limit) are forwarded, every one of them", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(withFields(100));
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200);
  const [request] = h.backend("solo").requests;
  for (let i = 0; i < 99; i++) t.is(header(request as Message, `x-h-${i}`), String(i));
});

test("101 header fields get 431 JSON and reach no member", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(withFields(101));
  const replies = await allResponses(client);
  t.is(replies.length, 1, client.preview);
  jsonError(t, replies[0], 431);
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("a request head over 16 KiB gets 431 JSON and reaches no member", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(`GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(17_000)}\r\n\r\n`);
  const replies = await allResponses(client);
  t.is(replies.length, 1, client.preview);
  jsonError(t, replies[0], 431);
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("a request target of 8,000 bytes (under the limit) is forwarded unchanged", async (t) => {
  const h = await proxy(t);
  const target = `/k?q=${"a".repeat(8_000 - 5)}`;
  const client = await h.connect();
  await client.send(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const [reply] = await client.waitForResponses(1);
  t.is(reply?.status, 200);
  t.is(h.backend("solo").requests[0]?.url, target);
});

test("a request target over 8 KiB gets 414 JSON and reaches no member", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send(`GET /k?q=${"a".repeat(9_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const replies = await allResponses(client);
  t.is(replies.length, 1, client.preview);
  jsonError(t, replies[0], 414);
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("a request head not finished within timeouts.head gets 408 JSON and close", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("GET /slow HTTP/1.1\r\nHost: x\r\n");
  const replies = await allResponses(client);
  t.is(replies.length, 1, client.preview);
  jsonError(t, replies[0], 408);
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("a slowloris head (a byte at a time, never finished) is cut with 408 JSON", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  const head = `GET /slow HTTP/1.1\r\nHost: x\r\n${"X-Drip: 1\r\n".repeat(1_000)}`;
  // The client's pace, not a wait for something: one byte every 20 ms until the proxy gives up (at most 10 s).
  for (let i = 0; i < 500 && !client.ended; i++) {
    await client.send(head.slice(i, i + 1)).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const replies = await allResponses(client);
  t.is(replies.length, 1, client.preview);
  jsonError(t, replies[0], 408);
  t.deepEqual(await memberTargets(h), ["GET /after"]);
});

test("an idle keep-alive connection is closed between requests, after its response", async (t) => {
  const h = await proxy(t);
  const client = await h.connect();
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.waitForResponses(1);
  await client.waitForEnd("the proxy to close the idle connection", 10_000);
  const parsed = client.responses();
  t.is(parsed.error, undefined);
  t.is(parsed.messages.length, 1, "nothing but the one response");
  t.is(parsed.messages[0]?.body.toString(), "solo GET /a");
  t.false(client.reset, "closed with FIN, not reset");
});
