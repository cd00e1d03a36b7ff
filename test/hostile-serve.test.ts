/**
 * Hostile clients through `serve` itself, in both shapes (one process, and
 * workers that get their connections from the primary): what the client got
 * and the exact bytes that reached the member. The full hostile suites run
 * the engine in-process on a manual clock; these few show that `serve`'s
 * listener, in either shape, is that same engine.
 */
import type { ExecutionContext } from "ava";
import { defaultConfig } from "../src/config.ts";
import { type Serving, startServing } from "../src/serving/index.ts";
import { fixed, header, json, type Message, parse, RawClient, RecordingBackend, type Script } from "./helpers/raw.ts";
import { inEachShape, type Shape } from "./helpers/shapes.ts";
import { until } from "./helpers/until.ts";

async function serveOne(
  t: ExecutionContext,
  shape: Shape,
  body = 30_000,
): Promise<{ serving: Serving; member: RecordingBackend }> {
  const member = await RecordingBackend.start("solo");
  t.teardown(() => member.close());
  const defaults = defaultConfig();
  const serving = await startServing({
    ...defaults,
    listen: { host: "127.0.0.1", port: 0 },
    admin: { host: "127.0.0.1", port: 0 },
    workers: shape.workers,
    access: { log: false, sample: 1 },
    log: { level: "warn", format: "json" },
    membership: { static: { members: [{ name: "solo", url: member.url }] } },
    proxy: { ...defaults.proxy, timeouts: { ...defaults.proxy.timeouts, body } },
  });
  t.teardown(() => serving.close());
  return { serving, member };
}

inEachShape(
  "through serve: Content-Length with Transfer-Encoding is refused with 400, and nothing reaches the member",
  async (t, shape) => {
    const { serving, member } = await serveOne(t, shape);
    const client = await RawClient.connect(serving.proxy.port);
    t.teardown(() => client.close());
    await client.send(
      "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    await client.waitForEnd("serve to close after refusing");
    const { messages } = client.responses();
    t.is(messages.length, 1, client.preview);
    t.is(messages[0]?.status, 400);
    t.regex(header(messages[0] as Message, "content-type") ?? "", /^application\/json/);
    json(messages[0] as Message);
    const after = await RawClient.connect(serving.proxy.port);
    t.teardown(() => after.close());
    await after.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    await after.waitForResponses(1);
    t.deepEqual(
      member.requests.map((r) => `${r.method} ${r.url} ${r.complete}`),
      ["GET /after true"],
      "only the later GET reached the member",
    );
    t.deepEqual(member.errors, []);
    for (const c of member.connections) t.is(c.parser.rest.length, 0, "no bytes beyond the parsed request");
  },
);

/** Answers 413 as soon as the head arrived, without reading the body. */
const refuseEarly: Script = {
  early: true,
  answer(_request, c) {
    c.socket.write(
      fixed(413, '{"error":"too_large"}', [
        ["Content-Type", "application/json"],
        ["Connection", "close"],
      ]),
    );
    c.socket.end();
  },
};

inEachShape(
  "through serve: a member's early response reaches the client before its upload is done",
  async (t, shape) => {
    const { serving, member } = await serveOne(t, shape);
    member.script = refuseEarly;
    const client = await RawClient.connect(serving.proxy.port);
    t.teardown(() => client.close());
    await client.send(`PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${"a".repeat(1000)}`);
    const [reply] = await client.waitForResponses(1);
    t.is(reply?.status, 413);
    t.is(reply?.body.toString(), '{"error":"too_large"}');
    // The member got the head and the bytes sent so far, on one connection, framed as sent.
    const [request] = member.requests;
    t.is(member.requests.length, 1);
    t.is(request?.method, "PUT");
    t.is(header(request as Message, "content-length"), "100000");
    const seen = parse("request", member.connections[0]?.bytes ?? Buffer.alloc(0));
    t.true((seen.messages[0]?.body.length ?? 0) <= 1000, "no byte the client did not send");
    // Unanswered as it is, the upload cannot go on: the proxy closes the client connection.
    await client.waitForEnd("serve to close the connection whose request was answered early");
  },
);

inEachShape(
  "through serve: a stalled upload gets 408 at the body timeout; the member's request is cut, not retried",
  async (t, shape) => {
    const { serving, member } = await serveOne(t, shape, 1_000);
    const client = await RawClient.connect(serving.proxy.port);
    t.teardown(() => client.close());
    await client.send(`POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${"b".repeat(10)}`);
    await client.waitForEnd("serve to cut the stalled upload", 15_000);
    const [reply] = client.responses().messages;
    t.is(reply?.status, 408, client.preview);
    t.regex(header(reply as Message, "content-type") ?? "", /^application\/json/);
    await until(() => member.connections.every((c) => c.closed), {
      what: "the member connection of the cut request closed",
    });
    t.is(member.requests.length, 1, "sent once, never retried");
    t.false(member.requests[0]?.complete);
    const seen = parse("request", member.connections[0]?.bytes ?? Buffer.alloc(0));
    t.is(seen.messages[0]?.body.toString(), "b".repeat(10), "exactly the bytes the client sent");
  },
);
