/**
 * HTTP/1.1 clients to members declared `protocol: h2c`: the request goes
 * over the member's h2c session pool with its framing translated, by the
 * same header rules, retry policy and ordering as to an HTTP/1.1 member.
 * Clients are raw sockets; members are node:http2 servers that record what
 * each stream brought (header block and body bytes). Every member behaves
 * alike, by path, so a test does not depend on who owns its key: a path
 * that fails "once" fails the first stream with a given `x-id`, on
 * whichever member that lands.
 */
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { connect, constants, createServer, type Http2Server, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { stringify } from "yaml";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import { createProxy } from "../src/proxy/server.ts";
import { Ring } from "../src/ring/ring.ts";
import { TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";
import { header, json, RawClient, RecordingBackend, Reports } from "./helpers/raw.ts";
import { inEachShape, serve } from "./helpers/shapes.ts";
import { until, within } from "./helpers/until.ts";

/** One stream a member got: its header block and every body byte. */
interface Seen {
  member: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface H2Member {
  name: string;
  url: string;
  server: Http2Server;
}

/** Streams every member got, in arrival order (bodies complete once `ended`). */
const seen: (Seen & { ended: boolean; written: number; rstCode: number; trailers?: IncomingHttpHeaders })[] = [];
const bigSize = 64 * 1024 * 1024;
/** How many streams each `x-id` brought, over all members (for "fails once"). */
const arrivals = new Map<string, number>();

async function startMember(name: string): Promise<H2Member> {
  const server = createServer();
  server.on("session", (session) => session.on("error", () => {}));
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const record: (typeof seen)[number] = {
      member: name,
      headers,
      body: Buffer.alloc(0),
      ended: false,
      written: 0,
      rstCode: -1,
    };
    stream.on("close", () => (record.rstCode = stream.rstCode ?? -1));
    stream.on("trailers", (trailers: IncomingHttpHeaders) => (record.trailers = trailers));
    seen.push(record);
    const id = String(headers["x-id"] ?? "");
    const count = (arrivals.get(id) ?? 0) + 1;
    arrivals.set(id, count);
    const [path, query] = String(headers[":path"]).split("?");
    const size = query?.startsWith("size=") ? Number(query.slice(5)) : bigSize;
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    const answer = () => {
      switch (path) {
        case "/nolength":
          stream.respond({ ":status": 200, "content-type": "text/plain" });
          stream.write("abc");
          stream.end("def");
          return;
        case "/trailers":
          stream.respond({ ":status": 200 }, { waitForTrailers: true });
          stream.on("wantTrailers", () => stream.sendTrailers({ "x-checksum": "42" }));
          stream.end("body");
          return;
        case "/reset-once":
          if (count === 1) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
          else {
            stream.respond({ ":status": 200, "content-length": "4" });
            stream.end("sent");
          }
          return;
        case "/refuse-once":
          if (count === 1) stream.close(constants.NGHTTP2_REFUSED_STREAM);
          else {
            stream.respond({ ":status": 200, "content-length": "4" });
            stream.end("sent");
          }
          return;
        case "/cut":
          stream.respond({ ":status": 200, "content-length": "1000" });
          stream.write(Buffer.alloc(100, 0x61), () => setImmediate(() => stream.session?.destroy()));
          return;
        case "/hang":
          return;
        case "/big": {
          // 64 MiB, written only as fast as the proxy takes it: `written` shows how far the member got.
          stream.respond({ ":status": 200, "content-length": String(size) });
          const piece = Buffer.alloc(64 * 1024, 0x62);
          const pump = () => {
            while (record.written < size && !stream.destroyed) {
              record.written += piece.length;
              const more = record.written < size;
              if (!more) stream.end(piece);
              else if (!stream.write(piece)) return void stream.once("drain", pump);
            }
          };
          pump();
          return;
        }
        case "/slow":
          setTimeout(() => {
            if (stream.destroyed) return;
            stream.respond({ ":status": 200, "content-length": "4" });
            stream.end("slow");
          }, 150);
          return;
        default: {
          const text = `${name} ${record.body.length}`;
          stream.respond({ ":status": 200, "content-length": String(Buffer.byteLength(text)), "x-member": name });
          stream.end(text);
        }
      }
    };
    stream.on("end", () => {
      record.body = Buffer.concat(chunks);
      record.ended = true;
      if (!stream.destroyed && !stream.headersSent) answer();
    });
    // The failing paths act on the head: they do not wait for a body.
    if (path === "/reset-once" && count === 1) answer();
    if (path === "/refuse-once" && count === 1) answer();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { name, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let members: H2Member[] = [];
let proxyPort = 0;
const reports = new Reports();
let closeAll: () => Promise<void> = async () => {};

test.before(async () => {
  members = await Promise.all(["a", "b", "c"].map(startMember));
  const source = new TestSource(members.map((m) => ({ name: m.name, url: m.url, protocol: "h2c" as const })));
  const cluster = new Cluster({ source });
  await cluster.start();
  const config = defaultConfig();
  config.key.from = { kind: "header", name: "x-key" };
  const proxy = createProxy({
    cluster,
    config: { key: config.key, proxy: config.proxy, http2: config.http2 },
    observer: reports,
  });
  proxyPort = (await proxy.listen(0, "127.0.0.1")).port;
  closeAll = async () => {
    await within(proxy.close(1000), { what: "the proxy to close" });
    for (const m of members) m.server.close();
    await cluster.stop();
  };
});

test.after.always(() => closeAll());

/** A proxy on a manual clock in front of one h2c member, for the timing rules. */
async function timedProxy(t: ExecutionContext): Promise<{ port: number; clock: ManualClock; reports: Reports }> {
  const member = await startMember("timed");
  const source = new TestSource([{ name: "timed", url: member.url, protocol: "h2c" }]);
  const cluster = new Cluster({ source });
  await cluster.start();
  const config = defaultConfig();
  config.key.from = { kind: "header", name: "x-key" };
  const clock = new ManualClock();
  const reports = new Reports();
  const proxy = createProxy({
    cluster,
    config: { key: config.key, proxy: config.proxy, http2: config.http2 },
    observer: reports,
    clock,
  });
  const { port } = await proxy.listen(0, "127.0.0.1");
  t.teardown(async () => {
    // The shutdown deadline runs on the manual clock.
    const closing = proxy.close(100);
    clock.advance(200);
    await closing;
    member.server.close();
    await cluster.stop();
  });
  return { port, clock, reports };
}

test.serial(
  "OPTIONS * to an h2c member whose URL has a path prefix: :path is *, as an HTTP/1.1 member gets it; other targets get the prefix",
  async (t) => {
    const member = await startMember("prefixed");
    const source = new TestSource([{ name: "prefixed", url: `${member.url}/api`, protocol: "h2c" }]);
    const cluster = new Cluster({ source });
    await cluster.start();
    const config = defaultConfig();
    config.key.from = { kind: "header", name: "x-key" };
    const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy, http2: config.http2 } });
    const { port } = await proxy.listen(0, "127.0.0.1");
    t.teardown(async () => {
      await within(proxy.close(1000), { what: "the proxy to close" });
      member.server.close();
      await cluster.stop();
    });
    const c = await RawClient.connect(port);
    t.teardown(() => c.close());
    await c.send("OPTIONS * HTTP/1.1\r\nHost: shop.example\r\nx-key: k\r\nx-id: star1\r\n\r\n");
    await c.send("GET /things HTTP/1.1\r\nHost: shop.example\r\nx-key: k\r\nx-id: star2\r\n\r\n");
    const responses = await c.waitForResponses(2);
    t.deepEqual(
      responses.map((r) => [r.status, r.body.toString()]),
      [
        [200, "prefixed 0"],
        [200, "prefixed 0"],
      ],
    );
    // An h2 client's OPTIONS * takes the other way to the member (the stream exchange): the same :path.
    const h2 = connect(`http://127.0.0.1:${port}`);
    t.teardown(() => h2.close());
    const stream = h2.request(
      { ":method": "OPTIONS", ":path": "*", "x-key": "k", "x-id": "star3" },
      { endStream: true },
    );
    stream.resume();
    const [head] = (await once(stream, "response")) as [IncomingHttpHeaders];
    t.is(Number(head[":status"]), 200);
    const paths = await until(
      () => {
        const got = ["star1", "star2", "star3"].map((id) => streamsOf(id)[0]?.headers[":path"]);
        return got.every((p) => p !== undefined) ? got : undefined;
      },
      { what: "the member's three streams" },
    );
    t.deepEqual(paths, ["*", "/api/things", "*"]);
    t.is(streamsOf("star1")[0]?.headers[":method"], "OPTIONS");
  },
);

test.serial(
  "an h2 client's request trailers reach the h2c member as trailers when its head announced them (trailer)",
  async (t) => {
    const h2 = connect(`http://127.0.0.1:${proxyPort}`);
    t.teardown(() => h2.close());
    const send = async (id: string, announce: boolean) => {
      const stream = h2.request(
        {
          ":method": "POST",
          ":path": "/upload",
          "x-key": "k",
          "x-id": id,
          ...(announce ? { trailer: "x-checksum" } : {}),
        },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "x-checksum": "42" }));
      stream.end("abc");
      stream.resume();
      const [head] = (await once(stream, "response")) as [IncomingHttpHeaders];
      await once(stream, "close");
      return Number(head[":status"]);
    };
    t.is(await send("trail1", true), 200);
    const [announced] = streamsOf("trail1");
    t.is(announced?.body.toString(), "abc");
    t.is(announced?.headers.trailer, "x-checksum");
    t.deepEqual(
      Object.entries(announced?.trailers ?? {}).filter(([name]) => !name.startsWith(":")),
      [["x-checksum", "42"]],
    );
    // Not announced: the member's stream ended with the body (no stream can wait for trailers it was not told of).
    t.is(await send("trail2", false), 200);
    const [unannounced] = streamsOf("trail2");
    t.is(unannounced?.body.toString(), "abc");
    t.is(unannounced?.trailers, undefined);
  },
);

/** A raw client on the proxy, closed when the test ends. */
async function client(t: { teardown(fn: () => void): void }): Promise<RawClient> {
  const c = await RawClient.connect(proxyPort);
  t.teardown(() => c.close());
  return c;
}

/** The streams that carried `x-id: id`. */
const streamsOf = (id: string) => seen.filter((s) => s.headers["x-id"] === id);

test.serial(
  "GET: the member gets the head as an h2 header block by the HTTP/1.1 rules; the client an HTTP/1.1 response",
  async (t) => {
    const c = await client(t);
    await c.send(
      "GET /things?x=1 HTTP/1.1\r\nHost: shop.example\r\nx-key: k1\r\nx-id: get1\r\nConnection: keep-alive, x-hop\r\n" +
        "x-hop: gone\r\nKeep-Alive: timeout=5\r\nx-ringroute-partition: 7\r\nAccept: */*\r\n\r\n",
    );
    const [response] = await c.waitForResponses(1);
    const stream = await until(() => streamsOf("get1").find((s) => s.ended), { what: "the member's stream" });
    t.is(response?.status, 200);
    t.is(response?.body.toString(), `${stream?.member} 0`);
    const h = stream?.headers as IncomingHttpHeaders;
    t.is(h[":method"], "GET");
    t.is(h[":path"], "/things?x=1");
    t.is(h[":authority"], "shop.example");
    t.is(h[":scheme"], "http");
    t.is(h.accept, "*/*");
    t.is(h["x-forwarded-for"], "127.0.0.1");
    t.is(h["x-forwarded-proto"], "http");
    t.is(h["x-forwarded-host"], "shop.example");
    for (const gone of ["connection", "keep-alive", "x-hop", "host", "transfer-encoding", "content-length"]) {
      t.is(h[gone], undefined, `${gone} does not reach the member`);
    }
    t.not(h["x-ringroute-partition"], "7", "a client's x-ringroute-* is not passed on");
    t.is(stream?.body.length, 0);
    t.false(c.ended, "the connection stays open");
  },
);

test.serial("POST with content-length: the body bytes and their length reach the member", async (t) => {
  const c = await client(t);
  const body = Buffer.from("x".repeat(5000));
  await c.send(
    Buffer.concat([
      Buffer.from("POST /p HTTP/1.1\r\nHost: h\r\nx-key: k2\r\nx-id: post1\r\nContent-Length: 5000\r\n\r\n"),
      body,
    ]),
  );
  const [response] = await c.waitForResponses(1);
  const [stream] = streamsOf("post1");
  t.is(response?.status, 200);
  t.is(stream?.headers["content-length"], "5000");
  t.true(stream?.body.equals(body));
});

test.serial(
  "chunked POST: the member gets the de-chunked bytes, no transfer-encoding, and the chunks' extensions and trailers stay behind",
  async (t) => {
    const c = await client(t);
    await c.send(
      "POST /p HTTP/1.1\r\nHost: h\r\nx-key: k3\r\nx-id: chunked1\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5;ext=1\r\nhello\r\n",
    );
    await c.send("6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n");
    const [response] = await c.waitForResponses(1);
    const [stream] = streamsOf("chunked1");
    t.is(response?.status, 200);
    t.is(stream?.body.toString("latin1"), "hello world");
    t.is(stream?.headers["transfer-encoding"], undefined);
    t.is(stream?.headers["content-length"], undefined);
    t.is(stream?.headers["x-trailer"], undefined);
    t.is(response?.body.toString(), `${stream?.member} 11`);
  },
);

test.serial("a response without content-length goes chunked to an HTTP/1.1 client, the connection kept", async (t) => {
  const c = await client(t);
  await c.send("GET /nolength HTTP/1.1\r\nHost: h\r\nx-key: k4\r\nx-id: nolength1\r\n\r\n");
  const [response] = await c.waitForResponses(1);
  t.is(response?.status, 200);
  t.is(response?.body.toString(), "abcdef");
  t.regex(c.text, /\r\ntransfer-encoding: chunked\r\n/i);
  t.true(c.text.endsWith("0\r\n\r\n"));
  await c.send("GET /nolength HTTP/1.1\r\nHost: h\r\nx-key: k4\r\nx-id: nolength2\r\n\r\n");
  t.is((await c.waitForResponses(2)).length, 2, "a second request on the same connection");
});

test.serial("HEAD: the head with the member's content-length and no body; the connection goes on", async (t) => {
  const c = await client(t);
  await c.send(
    "HEAD /h HTTP/1.1\r\nHost: h\r\nx-key: hd\r\nx-id: head1\r\n\r\n" +
      "GET /h HTTP/1.1\r\nHost: h\r\nx-key: hd\r\nx-id: head2\r\n\r\n",
  );
  const [head, get] = await c.waitForResponses(2, ["HEAD", "GET"]);
  t.is(head?.status, 200);
  t.is(head?.body.length, 0);
  t.is(header(head as never, "content-length"), String(get?.body.length));
  t.is(streamsOf("head1")[0]?.headers[":method"], "HEAD");
  t.is(get?.status, 200);
});

test.serial("an HTTP/1.0 client: the body as it comes, delimited by the close", async (t) => {
  const c = await client(t);
  await c.send("GET /nolength HTTP/1.0\r\nx-key: k5\r\nx-id: http10\r\n\r\n");
  await c.waitForEnd();
  const text = c.text;
  t.regex(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.notRegex(text, /transfer-encoding/i);
  t.regex(text, /\r\nconnection: close\r\n/i);
  t.true(text.endsWith("\r\n\r\nabcdef"), text);
});

test.serial("pipelined requests are answered in order, a slow first one included", async (t) => {
  const c = await client(t);
  await c.send(
    "GET /slow HTTP/1.1\r\nHost: h\r\nx-key: p1\r\nx-id: pipe1\r\n\r\n" +
      "GET /fast HTTP/1.1\r\nHost: h\r\nx-key: p2\r\nx-id: pipe2\r\n\r\n" +
      "POST /fast HTTP/1.1\r\nHost: h\r\nx-key: p3\r\nx-id: pipe3\r\nContent-Length: 3\r\n\r\nabc",
  );
  const responses = await c.waitForResponses(3);
  t.deepEqual(
    responses.map((r) => r.body.toString().split(" ")[1] ?? r.body.toString()),
    ["slow", "0", "3"],
  );
  t.false(c.ended);
});

test.serial("a member that resets an idempotent request before its headers: the next owner answers", async (t) => {
  const c = await client(t);
  const errors = reports.upstreamErrors.length;
  await c.send("GET /reset-once HTTP/1.1\r\nHost: h\r\nx-key: r1\r\nx-id: reset1\r\n\r\n");
  const [response] = await c.waitForResponses(1);
  const streams = streamsOf("reset1");
  t.is(response?.status, 200);
  t.is(streams.length, 2);
  t.not(streams[0]?.member, streams[1]?.member, "the retry goes to the next owner");
  t.deepEqual(reports.upstreamErrors.slice(errors), [{ member: streams[0]?.member as string, reason: "reset" }]);
});

test.serial("a reset POST is not resent (it may have been processed): 502", async (t) => {
  const c = await client(t);
  await c.send("POST /reset-once HTTP/1.1\r\nHost: h\r\nx-key: r2\r\nx-id: reset2\r\nContent-Length: 2\r\n\r\nhi");
  const [response] = await c.waitForResponses(1);
  t.is(response?.status, 502);
  t.is(json(response as never).error, "bad_gateway", "as for an HTTP/1.1 member that closed before answering");
  t.is(streamsOf("reset2").length, 1);
});

test.serial("a refused stream is resent whatever the method, its body with it", async (t) => {
  const c = await client(t);
  const errors = reports.upstreamErrors.length;
  await c.send("POST /refuse-once HTTP/1.1\r\nHost: h\r\nx-key: r3\r\nx-id: refuse1\r\nContent-Length: 4\r\n\r\nbody");
  const [response] = await c.waitForResponses(1);
  await until(() => streamsOf("refuse1").length === 2, { what: "both streams" });
  const streams = streamsOf("refuse1");
  t.is(response?.status, 200);
  t.is(response?.body.toString(), "sent");
  await until(() => streams[1]?.ended, { what: "the second stream's body" });
  t.is(streams[1]?.body.toString(), "body");
  t.deepEqual(reports.upstreamErrors.slice(errors), [{ member: streams[0]?.member as string, reason: "refused" }]);
});

test.serial("a member killed mid-response: the client's connection is cut, the response short", async (t) => {
  const c = await client(t);
  const before = reports.records.length;
  await c.send("GET /cut HTTP/1.1\r\nHost: h\r\nx-key: c1\r\nx-id: cut1\r\n\r\n");
  await c.waitForEnd();
  const [response] = c.responses().messages;
  t.is(response?.status, 200);
  t.false(response?.complete, "1000 bytes announced, fewer sent");
  const record = await until(() => reports.records.slice(before).find((r) => r.path === "/cut"), {
    what: "the access record",
  });
  t.true(record.truncated);
  t.is(record.protocol, "http/1.1");
});

test.serial("trailers go to a client that said TE: trailers, and are dropped otherwise", async (t) => {
  const c = await client(t);
  await c.send("GET /trailers HTTP/1.1\r\nHost: h\r\nx-key: t1\r\nx-id: tr1\r\nTE: trailers\r\n\r\n");
  await c.waitForResponses(1);
  t.true(c.text.endsWith("\r\n4\r\nbody\r\n0\r\nx-checksum: 42\r\n\r\n"), c.preview);
  t.is(streamsOf("tr1")[0]?.headers.te, "trailers", "the member hears the client reads trailers");
  const d = await client(t);
  await d.send("GET /trailers HTTP/1.1\r\nHost: h\r\nx-key: t1\r\nx-id: tr2\r\n\r\n");
  await d.waitForResponses(1);
  t.true(d.text.endsWith("\r\n4\r\nbody\r\n0\r\n\r\n"), d.preview);
});

test.serial("an Upgrade to an h2c member is refused with 502 member_protocol; the member sees nothing", async (t) => {
  const c = await client(t);
  await c.send(
    "GET /ws HTTP/1.1\r\nHost: h\r\nx-key: u1\r\nx-id: up1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
  );
  const [response] = await c.waitForResponses(1);
  t.is(response?.status, 502);
  const body = json(response as never);
  t.is(body.error, "member_protocol");
  t.regex(body.message, /Upgrade/);
  t.is(streamsOf("up1").length, 0);
});

test.serial(
  "Expect: 100-continue: the client gets 100 Continue, then sends its body, which reaches the member",
  async (t) => {
    const c = await client(t);
    await c.send(
      "POST /p HTTP/1.1\r\nHost: h\r\nx-key: e1\r\nx-id: expect1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    await c.when(() => c.text.startsWith("HTTP/1.1 100 Continue\r\n\r\n"), "100 Continue");
    await c.send("hello");
    const [response] = await c.waitForResponses(1);
    const [stream] = streamsOf("expect1");
    t.is(response?.status, 200);
    t.is(stream?.body.toString(), "hello");
    t.is(stream?.headers.expect, undefined, "the proxy answered the expectation itself");
  },
);

test.serial(
  "a client that goes away mid-body: the member's stream is cancelled with the bytes it got, the client blamed",
  async (t) => {
    const c = await client(t);
    const before = reports.records.length;
    await c.send("POST /gone HTTP/1.1\r\nHost: h\r\nx-key: g1\r\nx-id: gone1\r\nContent-Length: 100\r\n\r\n0123456789");
    const stream = await until(() => streamsOf("gone1")[0], { what: "the member's stream" });
    c.close();
    await until(() => stream.rstCode !== -1, { what: "the member's stream to end" });
    t.is(stream.rstCode, constants.NGHTTP2_CANCEL);
    const record = await until(() => reports.records.slice(before).find((r) => r.path === "/gone"), {
      what: "the access record",
    });
    t.is(record.outcome, "aborted");
    t.is(record.bytesIn, 10);
  },
);

test.serial("observer and access log: the requests count as HTTP/1.1 ones, with their member", async (t) => {
  const c = await client(t);
  const before = reports.records.length;
  await c.send("GET /logged HTTP/1.1\r\nHost: h\r\nx-key: l1\r\nx-id: log1\r\n\r\n");
  await c.waitForResponses(1);
  const record = await until(() => reports.records.slice(before).find((r) => r.path === "/logged"), {
    what: "the access record",
  });
  t.is(record.protocol, "http/1.1");
  t.is(record.status, 200);
  t.is(record.member, streamsOf("log1")[0]?.member as string);
  t.is(record.outcome, "ok");
});

inEachShape("ringroute serve: HTTP/1.1 clients reach h2c members, a chunked body de-chunked", async (t, shape) => {
  const member = await startMember("solo");
  t.teardown(() => member.server.close());
  const dir = await mkdtemp(join(tmpdir(), "ringroute-h1h2c-"));
  const config = join(dir, "ringroute.yaml");
  writeFileSync(
    config,
    stringify({
      key: { from: "header:x-key" },
      membership: { static: { members: [{ name: "solo", url: member.url, protocol: "h2c" }] } },
    }),
  );
  const running = await serve(t, shape, ["--config", config]);
  const port = Number(new URL(running.proxy).port);
  const id = `serve-${shape.workers}`;
  for (let i = 0; i < 4; i++) {
    // New connections: with workers, each may land on either process.
    const c = await RawClient.connect(port);
    t.teardown(() => c.close());
    await c.send(
      `POST /p HTTP/1.1\r\nHost: h\r\nx-key: s${i}\r\nx-id: ${id}-${i}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    const [response] = await c.waitForResponses(1);
    t.is(response?.status, 200);
    t.is(response?.body.toString(), "solo 3");
    t.is(streamsOf(`${id}-${i}`)[0]?.body.toString(), "abc");
  }
});

test.serial(
  "a member that does not answer: 504 upstream_timeout at timeouts.response, not a millisecond before",
  async (t) => {
    const { port, clock, reports } = await timedProxy(t);
    const c = await RawClient.connect(port);
    t.teardown(() => c.close());
    await c.send("GET /hang HTTP/1.1\r\nHost: h\r\nx-key: h1\r\nx-id: hang1\r\n\r\n");
    await until(() => streamsOf("hang1").length === 1, { what: "the member's stream" });
    clock.advance(30_000 - 1);
    await new Promise((resolve) => setImmediate(resolve));
    t.is(c.received.length, 0, "no answer 1 ms before the deadline");
    clock.advance(1);
    const [response] = await c.waitForResponses(1);
    t.is(response?.status, 504);
    t.is(json(response as never).error, "upstream_timeout");
    await until(() => streamsOf("hang1")[0]?.rstCode === constants.NGHTTP2_CANCEL, {
      what: "the member's stream cancelled",
    });
    t.deepEqual(reports.upstreamErrors, [{ member: "timed", reason: "timeout" }]);
    t.false(c.ended, "the client's connection goes on");
  },
);

test.serial(
  "a client that stops reading: the member is held back (bounded bytes), then the client is cut by its write deadline, not blamed on the member",
  async (t) => {
    const { port, clock, reports } = await timedProxy(t);
    const c = await RawClient.connect(port);
    t.teardown(() => c.close());
    c.socket.pause();
    await c.send("GET /big HTTP/1.1\r\nHost: h\r\nx-key: b1\r\nx-id: big1\r\n\r\n");
    const stream = await until(() => streamsOf("big1")[0], { what: "the member's stream" });
    // Until the cut, the clock moves a second at a time: the deadline is the client's, so the member is never timed out.
    await until(
      () => {
        clock.advance(1000);
        return stream?.rstCode !== -1;
      },
      { what: "the member's stream to end", timeout: 60_000 },
    );
    t.is(stream?.rstCode, constants.NGHTTP2_CANCEL, "the member's stream cancelled");
    t.true((stream?.written ?? 0) < bigSize / 2, `the member wrote ${stream?.written} bytes of ${bigSize}`);
    t.deepEqual(reports.clientErrors, ["slow_reader"]);
    t.deepEqual(reports.upstreamErrors, [], "the member is not blamed");
    const record = await until(() => reports.records[0], { what: "the access record" });
    t.is(record.outcome, "slow_reader");
    t.true(record.truncated);
  },
);

test.serial("8 MiB each way through one request: every byte arrives", async (t) => {
  const c = await client(t);
  const body = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i % 251;
  await c.send(
    Buffer.concat([
      Buffer.from(`POST /p HTTP/1.1\r\nHost: h\r\nx-key: big2\r\nx-id: big2\r\nTransfer-Encoding: chunked\r\n\r\n`),
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from("\r\n0\r\n\r\n"),
    ]),
  );
  const [response] = await c.waitForResponses(1);
  const [stream] = streamsOf("big2");
  t.true(stream?.body.equals(body), "the member got the 8 MiB de-chunked, byte for byte");
  t.is(response?.body.toString(), `${stream?.member} ${body.length}`);
  const d = await client(t);
  await d.send(`GET /big?size=${body.length} HTTP/1.1\r\nHost: h\r\nx-key: big3\r\nx-id: big3\r\n\r\n`);
  const [big] = await d.waitForResponses(1, [], 120_000);
  t.is(big?.body.length, body.length);
});

test.serial(
  "a ring mixing protocols: a chunked POST refused by an h2c member goes to an HTTP/1.1 member chunked again",
  async (t) => {
    const h2 = await startMember("m1");
    const h1 = await RecordingBackend.start("m2");
    const source = new TestSource([
      { name: "m1", url: h2.url, protocol: "h2c" },
      { name: "m2", url: h1.url },
    ]);
    const cluster = new Cluster({ source });
    await cluster.start();
    const config = defaultConfig();
    config.key.from = { kind: "header", name: "x-key" };
    const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy, http2: config.http2 } });
    const { port } = await proxy.listen(0, "127.0.0.1");
    t.teardown(async () => {
      await within(proxy.close(1000), { what: "the proxy to close" });
      h2.server.close();
      await h1.close();
      await cluster.stop();
    });
    const ring = Ring.build(["m1", "m2"]);
    const key = Array.from({ length: 100 }, (_, i) => `mixed-${i}`).find((k) => ring.ownerOf(k) === "m1") as string;
    const c = await RawClient.connect(port);
    t.teardown(() => c.close());
    await c.send(
      `POST /refuse-once HTTP/1.1\r\nHost: h\r\nx-key: ${key}\r\nx-id: mixed1\r\nTransfer-Encoding: chunked\r\n\r\n` +
        "5\r\nhello\r\n",
    );
    await c.send("6\r\n world\r\n0\r\n\r\n");
    const [response] = await c.waitForResponses(1);
    t.is(response?.status, 200);
    t.is(streamsOf("mixed1").length, 1, "the h2c member refused it");
    const [request] = h1.requests;
    t.is(header(request as never, "transfer-encoding"), "chunked");
    t.is(request?.body.toString(), "hello world");
    const raw = h1.connections[0]?.bytes.toString("latin1") ?? "";
    t.true(raw.endsWith("\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), raw);
  },
);
