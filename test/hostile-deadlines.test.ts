/**
 * Each side is timed on its own. While the client does not read, the member
 * is not timed (its response waits for the client); while the member does not
 * read the upload, the client is not timed. A client that stops reading is
 * cut after `timeouts.clientWrite`, blamed on the client, and the member
 * keeps its good name.
 */
import test from "ava";
import { type BackendConnection, head, type Message, type RawClient, Reports, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

const size = 8 * 1024 * 1024;

/** Counts the bytes a raw client receives (cheaply: an 8 MB response arrives in many reads). */
function receivedBytes(client: RawClient): () => number {
  let bytes = 0;
  client.socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  return () => bytes;
}

/** A member answering every request with `size` bytes, Content-Length framed. */
function bigAnswer(request: Message, c: BackendConnection): void {
  c.socket.write(head(200, "OK", [["Content-Length", String(size)]]));
  c.socket.write(Buffer.alloc(size, request.url.charCodeAt(1)));
}

test("a client that pauses reading longer than timeouts.response still gets the whole response; the member is not blamed", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.timeouts.response = 1_000;
      c.eject.after = 1;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = { answer: bigAnswer };
  const client = await h.connect();
  const bytes = receivedBytes(client);
  client.socket.pause();
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => member.connections[0]?.socket.writableLength, {
    what: "the member's response to back up behind the paused client",
  });
  // The client's pause: several times timeouts.response.
  await new Promise((resolve) => setTimeout(resolve, 3_500));
  client.socket.resume();
  await until(() => bytes() > size || client.ended, { what: "the whole response", timeout: 60_000 });
  const [reply] = await client.waitForResponses(1, [], 60_000);
  t.is(reply?.status, 200);
  t.is(reply?.body.length, size);
  t.true(reply?.body.every((b) => b === 0x61));
  t.deepEqual(reports.upstreamErrors, []);
  t.deepEqual(reports.ejections, []);
  t.deepEqual(h.proxy.ejected(), []);
  t.like(reports.records[0], { status: 200, outcome: "ok" });
});

test("a client that stops reading is cut after timeouts.clientWrite: slow_reader, truncated, not the member's failure", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.timeouts.response = 10_000;
      c.timeouts.clientWrite = 500;
      c.eject.after = 1;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = { answer: bigAnswer };
  const client = await h.connect();
  client.socket.pause();
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => reports.records.length === 1, { what: "the exchange to end", timeout: 20_000 });
  t.deepEqual(reports.clientErrors, ["slow_reader"]);
  t.deepEqual(reports.upstreamErrors, []);
  t.deepEqual(reports.ejections, []);
  t.deepEqual(reports.requests, [{ member: "solo", method: "GET", status: "truncated" }]);
  t.like(reports.records[0], { outcome: "slow_reader", truncated: true, reason: "client_slow" });
  // The member's connection could not be reused with a response half read: it is closed.
  await until(() => member.connections.every((c) => c.closed), { what: "the member connection to close" });
  client.socket.resume();
  await client.waitForEnd("the proxy to close the slow client");
});

test("a member that reads the upload late: the client's body deadline does not run while the member is not reading", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(["solo"], {
    observer: reports,
    proxy(c) {
      c.timeouts.body = 1_000;
      c.timeouts.response = 20_000;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = {
    early: true,
    async answer(request, c) {
      // A member busy elsewhere: it reads the upload only after several times timeouts.body.
      c.socket.pause();
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      c.socket.resume();
      await until(() => request.complete, { what: "the whole upload at the member" });
      c.socket.write(`${head(200, "OK", [["Content-Length", "2"]])}ok`);
    },
  };
  const client = await h.connect();
  const body = Buffer.alloc(size, 0x62);
  client.socket.write(`PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
  client.socket.write(body);
  const [reply] = await client.waitForResponses(1, [], 60_000);
  t.is(reply?.status, 200, client.preview);
  t.is(member.requests[0]?.body.length, size);
  t.deepEqual(reports.clientErrors, []);
});
