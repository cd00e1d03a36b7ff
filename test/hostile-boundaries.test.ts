/**
 * Message boundaries at the member: whatever a member does at the end of a
 * response (closes after a close-delimited body, answers a HEAD with a head
 * that promises a body, closes a kept-alive connection mid-upload), every
 * member connection carries whole requests, each as the client sent it, and
 * nothing else: no byte of one request's body continues on another
 * connection, and no pipelined request starts mid-message.
 */
import test from "ava";
import {
  type BackendConnection,
  fixed,
  header,
  json,
  type Message,
  parse,
  type RecordingBackend,
  scripts,
  startRawProxy,
} from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

/** Deterministic bytes that are not HTTP (no CR or LF, so a body cut anywhere cannot pass for a request line). */
function payload(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = 0x21 + ((x >>> 0) % 94);
  }
  return out;
}

/** `data` as a chunked body in `pieces` chunks. */
function chunked(data: Buffer, pieces: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < pieces; i++) {
    const chunk = data.subarray(Math.floor((i * data.length) / pieces), Math.floor(((i + 1) * data.length) / pieces));
    if (chunk.length > 0) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
  }
  parts.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(parts);
}

/** Each connection's bytes, parsed: strict HTTP, nothing left over, every request complete unless `cut` allows it. */
function wholeRequests(t: { is: (a: unknown, b: unknown, m?: string) => void }, c: BackendConnection): Message[] {
  const { messages, rest, error } = parse("request", c.bytes);
  t.is(error, undefined, `connection ${c.backend.connections.indexOf(c)}: strict HTTP`);
  t.is(rest.length, 0, "no bytes after the last message");
  return messages;
}

function seen(member: RecordingBackend): string[][] {
  return member.connections.map((c) => c.requests.map((r) => `${r.method} ${r.url}${r.complete ? "" : " (cut)"}`));
}

/** How the member answers a HEAD: each a head that a body would follow were it not a HEAD. */
const headAnswers: [string, string, boolean][] = [
  ["no length, Connection: close, then FIN", "HTTP/1.1 200 OK\r\nX-Kind: a\r\nConnection: close\r\n\r\n", true],
  ["no length, kept alive", "HTTP/1.1 200 OK\r\nX-Kind: b\r\n\r\n", false],
  ["Content-Length: 159543 and no body", "HTTP/1.1 200 OK\r\nX-Kind: c\r\nContent-Length: 159543\r\n\r\n", false],
];

for (const [kind, answer, closes] of headAnswers) {
  test(`a HEAD answered with a head promising a body (${kind}), then a pipelined 600 KB chunked POST: the POST reaches the member whole, as itself`, async (t) => {
    const h = await startRawProxy(["solo"]);
    t.teardown(() => h.close());
    const member = h.backend("solo");
    member.script = {
      async answer(request, c) {
        if (request.method === "HEAD") {
          // A HEAD response has no body whatever its head says (RFC 9112 §6.3).
          if (closes) c.socket.end(answer, "latin1");
          else c.socket.write(answer, "latin1");
          return;
        }
        c.socket.write(`HTTP/1.1 204 No Content\r\nX-Got: ${request.body.length}\r\n\r\n`);
      },
    };
    const data = payload(603_284, 7);
    const client = await h.connect();
    // Both requests in one write: the POST waits in the proxy while the HEAD is answered.
    await client.send(
      Buffer.concat([
        Buffer.from("HEAD /k/r?a HTTP/1.1\r\nHost: x\r\n\r\n"),
        Buffer.from("POST /k/r?b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        chunked(data, 30),
      ]),
    );
    const replies = await client.waitForResponses(2, ["HEAD", "POST"]);
    await client.waitForEnd("the proxy to close after the POST's Connection: close");
    const got = client.responses(["HEAD", "POST"]);
    t.is(got.error, undefined, "the client's bytes are strict HTTP");
    t.is(got.rest.length, 0);
    t.deepEqual(
      replies.map((m) => [m.status, m.body.length]),
      [
        [200, 0],
        [204, 0],
      ],
    );
    t.is(header(replies[0] as Message, "transfer-encoding"), undefined, "no framing invented for a bodiless answer");
    t.is(header(replies[1] as Message, "x-got"), String(data.length), "the member read the whole POST body");

    const requests = member.connections.flatMap((c) => wholeRequests(t, c));
    t.deepEqual(
      requests.map((r) => [r.method, r.url, r.complete]),
      [
        ["HEAD", "/k/r?a", true],
        ["POST", "/k/r?b", true],
      ],
    );
    t.true((requests[1] as Message).body.equals(data), "the POST's body arrived byte for byte");
    if (closes) t.deepEqual(seen(member), [["HEAD /k/r?a"], ["POST /k/r?b"]], "a closed connection is not reused");
  });
}

test("a chunked DELETE answered close-delimited, then a pipelined GET: the GET reaches a fresh connection as itself", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  const closing = "x".repeat(246);
  member.script = {
    answer(request, c) {
      if (request.method === "DELETE") scripts.closeDelimited(closing).answer(request, c);
      else c.socket.write(fixed(201, request.url));
    },
  };
  const data = payload(2293, 3);
  const client = await h.connect();
  await client.send(
    Buffer.concat([
      Buffer.from("DELETE /k/d?1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
      chunked(data, 32),
      Buffer.from("GET /k/d?2 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]),
  );
  const replies = await client.waitForResponses(2);
  t.deepEqual(
    replies.map((m) => [m.status, m.body.toString()]),
    [
      [200, closing],
      [201, "/k/d?2"],
    ],
  );
  for (const c of member.connections) wholeRequests(t, c);
  t.deepEqual(seen(member), [["DELETE /k/d?1"], ["GET /k/d?2"]]);
  t.true((member.requests[0] as Message).body.equals(data));
});

/** First request on a connection: answered. A POST on a reused connection: the member closes it on the head. */
function closesReusedOnPost(): { early: true; answer(request: Message, c: BackendConnection): Promise<void> } {
  return {
    early: true,
    async answer(request, c) {
      if (request.method === "POST" && c.requests.indexOf(request) > 0) {
        c.socket.destroy();
        return;
      }
      await until(() => request.complete || c.closed, { what: `${request.method} ${request.url} to arrive whole` });
      if (!c.closed) c.socket.write(fixed(200, `${request.method} ${request.url} ${request.body.length}`));
    },
  };
}

test("a reused connection the member closes after part of a POST body was written: 502, and the rest of the body reaches no connection", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = closesReusedOnPost();
  const warm = await h.connect();
  await warm.send("GET /k/u?warm HTTP/1.1\r\nHost: x\r\n\r\n");
  await warm.waitForResponses(1);

  const uploader = await h.connect();
  // The head and the first body bytes in one read: both are written to the pooled connection before it fails.
  await uploader.send("POST /k/u?up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nPOST /k/u?s");
  const [answer] = await uploader.waitForResponses(1);
  t.is(answer?.status, 502);
  t.is(json(answer as Message).error, "body_not_replayable", "a body partly gone cannot be sent again");
  await uploader.waitForEnd("the proxy to close the client whose body is unread");
  // The rest of the body, crafted as a request: if it went anywhere, a member would run it.
  await uploader
    .send("mug HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n0123456789012345678901234567890123456789012345678")
    .catch(() => {});

  const after = await h.connect();
  await after.send("GET /k/u?after HTTP/1.1\r\nHost: x\r\n\r\n");
  const [last] = await after.waitForResponses(1);
  t.is(last?.body.toString(), "GET /k/u?after 0");

  await until(() => member.connections[0]?.closed === true, { what: "the failed connection to close" });
  for (const c of member.connections) wholeRequests(t, c);
  t.deepEqual(seen(member), [["GET /k/u?warm", "POST /k/u?up (cut)"], ["GET /k/u?after"]]);
  t.is((member.requests[1] as Message).body.toString(), "POST /k/u?s", "only the bytes sent before the close");
  t.false(
    member.requests.some((r) => r.url.includes("smug")),
    "no request the proxy never parsed reached the member",
  );
});

test("a reused connection the member closes on a POST head, before any body byte: resent on a fresh connection, body and all, once", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = closesReusedOnPost();
  const warm = await h.connect();
  await warm.send("GET /k/u?warm HTTP/1.1\r\nHost: x\r\n\r\n");
  await warm.waitForResponses(1);

  const uploader = await h.connect();
  await uploader.send("POST /k/u?up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
  await until(() => member.connections[1]?.requests[0]?.method === "POST", {
    what: "the POST head resent on a fresh connection",
  });
  await uploader.send("0123456789");
  const [answer] = await uploader.waitForResponses(1);
  t.is(answer?.status, 200);
  t.is(answer?.body.toString(), "POST /k/u?up 10");

  for (const c of member.connections) wholeRequests(t, c);
  t.deepEqual(seen(member), [["GET /k/u?warm", "POST /k/u?up (cut)"], ["POST /k/u?up"]]);
  t.is((member.requests[1] as Message).body.length, 0, "the closed connection got the head only");
  t.is((member.requests[2] as Message).body.toString(), "0123456789", "the fresh one got the body, whole");
});

/** Two members: whichever gets a PUT first answers 503 at its head (before its body); the other answers it whole. */
async function busyFirst() {
  const h = await startRawProxy(["a", "b"]);
  let busy: string | undefined;
  for (const member of h.backends) {
    member.script = {
      early: true,
      async answer(request, c) {
        if (request.method === "PUT" && (busy === undefined || busy === member.name)) {
          busy = member.name;
          c.socket.write(fixed(503, "busy"));
          return;
        }
        await until(() => request.complete || c.closed, { what: `${request.method} ${request.url} to arrive whole` });
        if (!c.closed) c.socket.write(fixed(200, `${member.name} ${request.method} ${request.body.toString()}`));
      },
    };
  }
  return { h, busy: () => h.backend(busy ?? "none"), other: () => h.backends.find((b) => b.name !== busy) };
}

test("a PUT answered 503 before any of its body: resent to the next member, which gets the head and then the whole body; the first connection is closed", async (t) => {
  const { h, busy, other } = await busyFirst();
  t.teardown(() => h.close());
  const client = await h.connect();
  await client.send("PUT /k/p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
  await until(() => other()?.requests[0]?.method === "PUT", { what: "the PUT head at the next member" });
  await client.send("0123456789");
  const [answer] = await client.waitForResponses(1);
  t.is(answer?.status, 200);
  t.is(answer?.body.toString(), `${other()?.name} PUT 0123456789`);
  await until(() => busy().connections[0]?.closed === true, {
    what: "the connection that still expected the body to close",
  });
  for (const member of h.backends) for (const c of member.connections) wholeRequests(t, c);
  t.deepEqual(seen(busy()), [["PUT /k/p (cut)"]], "the head only, then closed");
  t.deepEqual(seen(other() as RecordingBackend), [["PUT /k/p"]]);
});

test("a PUT answered 503 after part of its body went out: the 503 is passed on, and the rest of the body reaches no member", async (t) => {
  const { h, busy, other } = await busyFirst();
  t.teardown(() => h.close());
  const client = await h.connect();
  await client.send("PUT /k/p HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\nGET /k/smug");
  const [answer] = await client.waitForResponses(1);
  t.deepEqual([answer?.status, answer?.body.toString()], [503, "busy"], "the member's answer: the body is not at hand");
  await client.waitForEnd("the proxy to close the client whose body is unread");
  await client.send(" HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n0123456789").catch(() => {});
  // A later request for the same key goes to the member that answered 503 to PUTs only.
  const next = await h.connect();
  await next.send("GET /k/p HTTP/1.1\r\nHost: x\r\n\r\n");
  const [got] = await next.waitForResponses(1);
  t.is(got?.body.toString(), `${busy().name} GET `);
  for (const member of h.backends) for (const c of member.connections) wholeRequests(t, c);
  t.deepEqual(seen(busy()), [["PUT /k/p (cut)"], ["GET /k/p"]], "the cut connection was not reused");
  t.is((busy().requests[0] as Message).body.toString(), "GET /k/smug");
  t.deepEqual(seen(other() as RecordingBackend), [], "nothing was resent");
});
