/**
 * The hand-built frames of test/helpers/h2frames.ts, checked against a real
 * node:http2 server (nghttp2): what it accepts and how it reads it, and the
 * reader against what it sends back.
 */
import { once } from "node:events";
import { createServer, type Http2Server, type Http2Session, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import test from "ava";
import {
  continuation,
  data,
  ErrorCode,
  Flag,
  FrameType,
  goaway,
  headerBlock,
  headersFrame,
  headersInPieces,
  hpackInteger,
  ping,
  priority,
  RawH2Client,
  request,
  requestFields,
  responseHeaders,
  rstStream,
  Setting,
  settingsOf,
  windowIncrementOf,
  windowUpdate,
} from "./helpers/h2frames.ts";
import { until, within } from "./helpers/until.ts";

interface Seen {
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  rstCode: number | undefined;
}

/** A node:http2 server that records each stream and answers with `answer`. */
async function start(answer: (stream: ServerHttp2Stream, path: string) => void) {
  const server: Http2Server = createServer();
  const seen: Seen[] = [];
  const sessions: Http2Session[] = [];
  const goaways: { code: number; lastStreamId: number }[] = [];
  server.on("session", (session) => {
    sessions.push(session);
    session.on("goaway", (code, lastStreamId) => goaways.push({ code, lastStreamId }));
    session.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    const record: Seen = { headers: { ...headers }, body: Buffer.alloc(0), rstCode: undefined };
    seen.push(record);
    stream.on("data", (chunk: Buffer) => (record.body = Buffer.concat([record.body, chunk])));
    stream.on("error", () => {});
    stream.on("close", () => (record.rstCode = stream.rstCode));
    answer(stream, String(headers[":path"]));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const clients: RawH2Client[] = [];
  return {
    seen,
    sessions,
    goaways,
    async connect(options?: Parameters<typeof RawH2Client.connect>[1]) {
      const client = await RawH2Client.connect(port, options);
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) c.close();
      for (const s of sessions) s.destroy();
      await within(new Promise((resolve) => server.close(resolve)), { what: "the http2 server to close" });
    },
  };
}

function ok(body = "ok") {
  return (stream: ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "x-answer": "yes" });
    stream.end(body);
  };
}

test("HPACK integers encode as RFC 7541 Appendix C.1 shows", (t) => {
  t.deepEqual([...hpackInteger(10, 5)], [0x0a]);
  t.deepEqual([...hpackInteger(1337, 5)], [0x1f, 0x9a, 0x0a]);
  t.deepEqual([...hpackInteger(42, 8)], [0x2a]);
  // A value equal to the prefix's maximum takes a continuation byte of 0.
  t.deepEqual([...hpackInteger(127, 7)], [0x7f, 0x00]);
});

test("a hand-built GET reaches node:http2 with every field, and the reply reads back as frames", async (t) => {
  const s = await start(ok("hello"));
  t.teardown(() => s.close());
  const long = "v".repeat(300); // lengths past the 7-bit prefix
  const client = await s.connect();
  await client.send(request(1, "/a/b?c=d", { authority: "example.test", extra: [["x-long", long]] }));
  await client.when(
    (fs) => fs.some((f) => f.type === FrameType.DATA && f.flags & Flag.END_STREAM),
    "the DATA that ends stream 1",
  );
  const got = s.seen[0]?.headers;
  t.is(got?.[":method"], "GET");
  t.is(got?.[":path"], "/a/b?c=d");
  t.is(got?.[":authority"], "example.test");
  t.is(got?.[":scheme"], "http");
  t.is(got?.["x-long"], long);
  const serverSettings = client.frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK));
  t.truthy(serverSettings, "the server's SETTINGS came first");
  t.true(settingsOf(serverSettings as never).size >= 0);
  t.true(
    client.frames.some((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK),
    "our SETTINGS were acknowledged",
  );
  t.is(Buffer.concat(client.of(FrameType.DATA, 1).map((f) => f.payload)).toString(), "hello");
  const [headers] = await responseHeaders(client.raw.received, 1);
  t.is(Number(headers?.[":status"]), 200);
  t.is(headers?.["x-answer"], "yes");
});

test("a header block cut into a HEADERS and CONTINUATION frames is one request", async (t) => {
  const s = await start(ok());
  t.teardown(() => s.close());
  const client = await s.connect();
  const block = headerBlock(requestFields("/pieces", { extra: [["x-a", "1".repeat(200)]] }));
  // nghttp2 accepts at most 8 CONTINUATIONs after a HEADERS (its CVE-2024-28182 limit): 1 + 8 pieces.
  await client.send(headersInPieces(1, block, Math.ceil(block.length / 9), { endStream: true }));
  await until(() => s.seen.length === 1, { what: "the server to get the request" });
  t.is(s.seen[0]?.headers[":path"], "/pieces");
  t.is(s.seen[0]?.headers["x-a"], "1".repeat(200));
  // Hand-assembled: HEADERS without END_HEADERS, then one CONTINUATION that ends it.
  const head = headerBlock(requestFields("/two"));
  await client.send(
    headersFrame(3, head.subarray(0, 7), { endStream: true, endHeaders: false }),
    continuation(3, head.subarray(7), true),
  );
  await until(() => s.seen.length === 2, { what: "the server to get the second request" });
  t.is(s.seen[1]?.headers[":path"], "/two");
});

test("a POST body in DATA frames arrives whole and is credited back; a PRIORITY frame is accepted", async (t) => {
  const s = await start((stream) => {
    stream.on("end", () => {
      stream.respond({ ":status": 200 });
      stream.end();
    });
    stream.resume();
  });
  t.teardown(() => s.close());
  const client = await s.connect();
  await client.send(
    priority(1, 0, 200),
    request(1, "/upload", { method: "POST", endStream: false }),
    data(1, "abc"),
    data(1, "d".repeat(16_000)),
    data(1, "d".repeat(16_000)),
    data(1, "d".repeat(8_000)),
    data(1, "ef", true),
  );
  await client.when(() => client.of(FrameType.HEADERS, 1).length > 0, "the answer to the POST");
  await until(() => s.seen[0]?.body.length === 40_005, { what: "the server to read the body" });
  t.is(s.seen[0]?.body.toString(), `abc${"d".repeat(40_000)}ef`);
  t.is(client.goaway, undefined);
  // Past half the connection window consumed, nghttp2 gives it back.
  const credited = client.of(FrameType.WINDOW_UPDATE, 0).reduce((n, f) => n + windowIncrementOf(f), 0);
  t.true(credited > 0 && credited <= 40_005, `connection window credited ${credited}`);
});

test("the server sends no more than the initial window until a WINDOW_UPDATE opens it", async (t) => {
  const size = 100_000;
  const s = await start(ok("x".repeat(size)));
  t.teardown(() => s.close());
  // A connection window as the spec starts it (65,535), and a stream window of 1,000.
  const client = await s.connect({ settings: [[Setting.INITIAL_WINDOW_SIZE, 1000]] });
  await client.send(request(1, "/big"));
  const received = () => client.of(FrameType.DATA, 1).reduce((n, f) => n + f.payload.length, 0);
  await client.when(() => received() === 1000, "the first 1,000 bytes (the stream's window)");
  await client.send(windowUpdate(1, 70_000), windowUpdate(0, 70_000));
  // The connection window (65,535 + 70,000) now limits it, and the stream's (71,000).
  await client.when(() => received() === 71_000, "71,000 bytes after the window opened");
  await client.send(windowUpdate(1, size));
  await client.when(() => received() === size, "the whole body");
  t.true(
    client.of(FrameType.DATA, 1).every((f) => f.payload.length <= 16_384),
    "no frame past the default maximum size",
  );
});

test("a PING is answered with an ACK carrying the same 8 bytes", async (t) => {
  const s = await start(ok());
  t.teardown(() => s.close());
  const client = await s.connect();
  await client.send(ping(0x0102030405060708n));
  const ack = await client.when(
    (fs) => fs.find((f) => f.type === FrameType.PING && f.flags & Flag.ACK),
    "the PING ACK",
  );
  t.is(ack.payload.readBigUInt64BE(0), 0x0102030405060708n);
});

test("RST_STREAM and GOAWAY from the client carry their codes; the server's are decoded", async (t) => {
  const s = await start((stream, path) => {
    if (path === "/refuse") stream.close(ErrorCode.REFUSED_STREAM);
    // "/hang" never answers.
  });
  t.teardown(() => s.close());
  const client = await s.connect();
  await client.send(request(1, "/hang", { endStream: false }));
  await until(() => s.seen.length === 1, { what: "stream 1 at the server" });
  await client.send(rstStream(1, ErrorCode.CANCEL));
  await until(() => s.seen[0]?.rstCode !== undefined, { what: "stream 1 to close at the server" });
  t.is(s.seen[0]?.rstCode, ErrorCode.CANCEL);

  await client.send(request(3, "/refuse"));
  await client.when(() => client.resets.get(3), "the server's RST_STREAM on stream 3");
  t.is(client.resets.get(3), ErrorCode.REFUSED_STREAM);

  // A client's last stream id counts server-initiated (even) streams: none here.
  await client.send(goaway(0, ErrorCode.ENHANCE_YOUR_CALM, "bye"));
  await until(() => s.goaways.length === 1, { what: "the server to see the client's GOAWAY" });
  t.deepEqual(s.goaways[0], { code: ErrorCode.ENHANCE_YOUR_CALM, lastStreamId: 0 });

  const other = await s.connect();
  await until(() => s.sessions.length === 2, { what: "the second session" });
  (s.sessions[1] as Http2Session).goaway(ErrorCode.ENHANCE_YOUR_CALM, 0, Buffer.from("calm"));
  const g = await other.waitForGoaway();
  t.deepEqual(g, { lastStreamId: 0, code: ErrorCode.ENHANCE_YOUR_CALM, debug: "calm" });
});

test("responseHeaders decodes statuses HPACK does not index statically, also past WINDOW_UPDATE and RST_STREAM frames", async (t) => {
  const statuses: Record<string, number> = { "/a": 502, "/b": 431, "/c": 502, "/d": 503 };
  const s = await start((stream, path) => {
    if (path !== "/d") {
      stream.respond({ ":status": statuses[path] ?? 500 });
      stream.end();
      return;
    }
    // Read the upload, open the connection window to the largest there is (counting what the upload used, as
    // HAProxy does), answer, then reset the stream.
    stream.resume();
    stream.on("end", () => {
      stream.session?.setLocalWindowSize(2 ** 31 - 1);
      stream.respond({ ":status": 503 });
      stream.write("part", () => stream.destroy(new Error("cut")));
    });
  });
  t.teardown(() => s.close());
  const client = await s.connect();
  const upload = [data(7, "u".repeat(16_000)), data(7, "u".repeat(16_000)), data(7, "u".repeat(8_000), true)];
  await client.send(request(1, "/a"), request(3, "/b"), request(5, "/c"));
  await client.send(request(7, "/d", { method: "POST", endStream: false }), ...upload);
  await client.when(
    () => client.of(FrameType.HEADERS).length === 4 && client.resets.has(7),
    "four answers, the last reset",
  );
  t.true(client.of(FrameType.WINDOW_UPDATE, 0).length > 0, "the server credited the upload");
  const decoded = await responseHeaders(client.raw.received, 4);
  t.deepEqual(
    decoded.map((h) => Number(h?.[":status"])),
    [502, 431, 502, 503],
  );
});
