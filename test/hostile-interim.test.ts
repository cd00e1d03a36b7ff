/**
 * A member's 1xx before a small body that comes in pieces, with the next
 * request pipelined behind: the client gets the member's body byte for byte
 * and then the next response, whole, whichever way the member's bytes are
 * cut into reads. ringroute holds a small sized response's head to write it
 * with its body (room kept for the body) and reads member sockets into one
 * shared buffer, so each cut is a boundary one of those could get wrong.
 * (The differential test once showed a body like this with the next head
 * inside it: HAProxy's, the case replayed; these pin ringroute's side.)
 */
import test from "ava";
import { type BackendConnection, header, type Message, parse, type RawClient, startRawProxy } from "./helpers/raw.ts";

/** The body of the reported case (DIFFERENTIAL_SEED=1442777291 DIFFERENTIAL_PATH=56): bytes of 0x80 and up. */
const body = Buffer.from("6c1397aeebcd1907faea63", "hex");
/** Its five writes, as the member sent them. */
const pieces = [body.subarray(0, 3), body.subarray(3, 5), body.subarray(5, 7), body.subarray(7, 9), body.subarray(9)];

const head =
  'HTTP/1.1 202 Not Here\r\nDate: Tue, 01 Dec 2026 12:00:00 GMT\r\nx-r-1287ba: FH^@q@"%^\r\n' +
  "Connection: x-r-hide\r\nX-R-Hide: secret\r\nConnection: keep-alive\r\nContent-Length: 11\r\n\r\n";
const next = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!";

function write(c: BackendConnection, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve) => c.socket.write(bytes, () => resolve()));
}

/**
 * Lets the proxy read what was written: it runs in this process, so once a write is done and the event loop
 * went round (its poll phase), the proxy's member socket has had its read. No clock is involved.
 */
async function read(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Waits until the client has more than `than` bytes: the piece before went out before the next is written. */
async function forwarded(client: RawClient, than: number): Promise<number> {
  await client.when(() => client.received.length > than, `more than ${than} bytes at the client`, 10_000);
  return client.received.length;
}

const deleteHead = "DELETE /k0/2f7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
const deleteBody = "3\r\nabc\r\n0\r\n\r\n";
const get = "GET /k0/2f7?next HTTP/1.1\r\nHost: x\r\n\r\n";

/** How the member's bytes are cut into the proxy's reads. */
const cuts: [string, (c: BackendConnection, client: RawClient) => Promise<void>][] = [
  [
    "every boundary its own read (1xx, head, each piece)",
    async (c, client) => {
      await write(c, "HTTP/1.1 100 Continue\r\n\r\n");
      await read();
      await write(c, head);
      await read();
      let seen = client.received.length;
      for (const piece of pieces) {
        await write(c, piece);
        seen = await forwarded(client, seen);
      }
    },
  ],
  [
    "1xx, head and first piece in one read, then each piece",
    async (c, client) => {
      await write(
        c,
        Buffer.concat([Buffer.from(`HTTP/1.1 100 Continue\r\n\r\n${head}`, "latin1"), pieces[0] as Buffer]),
      );
      let seen = await forwarded(client, 0);
      for (const piece of pieces.slice(1)) {
        await write(c, piece);
        seen = await forwarded(client, seen);
      }
    },
  ],
  [
    "1xx alone, then the head with the whole body",
    async (c) => {
      await write(c, "HTTP/1.1 100 Continue\r\n\r\n");
      await read();
      await write(c, Buffer.concat([Buffer.from(head, "latin1"), body]));
    },
  ],
  [
    "1xx ending in the head's read, the body cut after 10 bytes",
    async (c, client) => {
      await write(c, `HTTP/1.1 100 Continue\r\n\r\n${head}`);
      await read();
      await write(c, body.subarray(0, 10));
      const seen = await forwarded(client, 0);
      await write(c, body.subarray(10));
      await forwarded(client, seen);
    },
  ],
];

for (const asked of [false, true]) {
  for (const [how, answer] of cuts) {
    test(`a 100 Continue${asked ? " the client asked for" : " nobody asked for"}, then 11 bytes in pieces (${how}), then a pipelined request: the body byte for byte, then the next response whole`, async (t) => {
      const h = await startRawProxy(["solo"]);
      t.teardown(() => h.close());
      const member = h.backend("solo");
      let client: RawClient | undefined;
      member.script = {
        async answer(request: Message, c: BackendConnection) {
          if (request.method === "DELETE") await answer(c, client as RawClient);
          else await write(c, next);
        },
      };
      client = await h.connect();
      const expect = asked ? "Expect: 100-continue\r\n" : "";
      // Both requests in one write: the GET waits in the proxy while the DELETE is answered.
      await client.send(Buffer.from(`${deleteHead}${expect}\r\n${deleteBody}${get}`, "latin1"));
      const replies = await client.waitForResponses(2, ["DELETE", "GET"]);
      const got = client.responses(["DELETE", "GET"]);
      t.is(got.error, undefined, "the client's bytes are strict HTTP");
      t.is(got.rest.length, 0, "nothing after the second response");
      t.deepEqual(
        got.messages.map((m) => m.status),
        asked ? [100, 202, 500] : [202, 500],
        "a 100 only to a client that asked for it",
      );
      const [accepted, failed] = replies as [Message, Message];
      t.is(accepted.reason, "Not Here");
      t.is(header(accepted, "content-length"), "11");
      t.is(header(accepted, "x-r-1287ba"), 'FH^@q@"%^');
      t.is(header(accepted, "x-r-hide"), undefined, "a field the member's Connection named stays behind");
      t.true(accepted.body.equals(body), `the member's 11 bytes, got ${accepted.body.toString("hex")}`);
      t.is(failed.body.toString("latin1"), "oops!");

      // The member got both requests, each as the client sent it, on one connection.
      t.is(member.connections.length, 1);
      const { messages, rest, error } = parse("request", (member.connections[0] as BackendConnection).bytes);
      t.is(error, undefined);
      t.is(rest.length, 0);
      t.deepEqual(
        messages.map((m) => [m.method, m.url, m.complete, m.body.toString("latin1")]),
        [
          ["DELETE", "/k0/2f7", true, "abc"],
          ["GET", "/k0/2f7?next", true, ""],
        ],
      );
    });
  }
}
