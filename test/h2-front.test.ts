/**
 * HTTP/2 clients in front of HTTP/1.1 members: curl with prior knowledge
 * and over TLS by ALPN, and node:http2 sessions. Each stream is routed like
 * an HTTP/1.1 request (to `lookup`'s owner), and the member gets an
 * HTTP/1.1 request made by the same header rules, with the framing
 * translated: the bytes it received are checked. ringroute's own errors
 * are JSON for h2 clients and trailers-only responses for gRPC calls.
 */
import { constants } from "node:http2";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { closeSession, curl, request, session } from "./helpers/h2.ts";
import { data, FrameType, headerBlock, headersFrame, RawH2Client, request as request1 } from "./helpers/h2frames.ts";
import { fixed, head, header, json, RawClient, Reports, scripts, startRawProxy } from "./helpers/raw.ts";
import { selfSigned } from "./helpers/tls.ts";
import { until } from "./helpers/until.ts";

const names = ["alpha", "bravo", "charlie"];
const ring = Ring.build(names);

test("curl --http2-prior-knowledge: every request reaches lookup's owner as an HTTP/1.1 request made by the same header rules", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(names, { observer: reports });
  t.teardown(() => h.close());
  const keys = Array.from({ length: 6 }, (_, i) => `/users/${i}`);
  // One curl a request: curl 7.88 fails a second request on a reused h2c connection to any node:http2 server.
  for (const key of keys) {
    const run = await curl([
      "--http2-prior-knowledge",
      "--write-out",
      "|%{http_version} %{http_code}",
      "-H",
      "cookie: a=1",
      "-H",
      "cookie: b=2",
      "-H",
      "x-ringroute-member: forged",
      `http://127.0.0.1:${h.port}${key}?q=1`,
    ]);
    t.is(run.code, 0, run.stderr);
    t.is(run.stdout, `${ring.ownerOf(key)} GET ${key}?q=1|2 200`, key);
  }
  // The exact head the member got: request line, host from :authority, the client's fields, cookies joined
  // (RFC 9113 §8.2.3), forged x-ringroute-* dropped, this hop's X-Forwarded-*, no framing header.
  const owner = h.backend(ring.ownerOf("/users/0") as string);
  const first = owner.connections[0]?.bytes.toString("latin1") ?? "";
  const authority = `127.0.0.1:${h.port}`;
  const version = /user-agent: (curl\/[\d.]+)/.exec(first)?.[1];
  t.true(
    first.startsWith(
      `GET /users/0?q=1 HTTP/1.1\r\nhost: ${authority}\r\nuser-agent: ${version}\r\naccept: */*\r\ncookie: a=1; b=2\r\n` +
        `x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: ${authority}\r\n\r\n`,
    ),
    first,
  );
  t.deepEqual(
    reports.protocols,
    keys.map(() => "h2"),
  );
  t.deepEqual(
    reports.records.map((r) => [r.protocol, r.status, r.member]),
    keys.map((key) => ["h2", 200, ring.ownerOf(key)]),
  );
});

test("curl --http2 over TLS: ALPN picks h2, and http/1.1 still works on the same listener", async (t) => {
  const cert = selfSigned("proxy");
  const h = await startRawProxy(names, { tls: cert });
  t.teardown(() => h.close());
  const url = (key: string) => `https://127.0.0.1:${h.port}${key}`;
  const h2 = await curl(["--http2", "--insecure", "--write-out", "|%{http_version}", url("/users/7")]);
  t.is(h2.code, 0, h2.stderr);
  t.is(h2.stdout, `${ring.ownerOf("/users/7")} GET /users/7|2`);
  const h1 = await curl(["--http1.1", "--insecure", "--write-out", "|%{http_version}", url("/users/8")]);
  t.is(h1.stdout, `${ring.ownerOf("/users/8")} GET /users/8|1.1`);
  const member = h.backend(ring.ownerOf("/users/7") as string);
  t.regex(member.connections[0]?.bytes.toString("latin1") ?? "", /x-forwarded-proto: https\r\n/);
});

test("over TLS with http2: false, ALPN offers http/1.1 alone: curl --http2 speaks HTTP/1.1", async (t) => {
  const h = await startRawProxy(names, { tls: selfSigned("proxy"), http2: false });
  t.teardown(() => h.close());
  const run = await curl([
    "--http2",
    "--insecure",
    "--write-out",
    "|%{http_version}",
    `https://127.0.0.1:${h.port}/users/7`,
  ]);
  t.is(run.stdout, `${ring.ownerOf("/users/7")} GET /users/7|1.1`, run.stderr);
});

test("a POST body: sized, the member gets content-length and the bytes; unsized in several DATA frames, chunked", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const key = "/carts/1";
  const owner = h.backend(ring.ownerOf(key) as string);

  const sized = await request(client, key, {
    method: "POST",
    headers: { "content-length": "11" },
    chunks: ["hello", " world"],
  });
  t.is(sized.status, 200);
  const [first] = await owner.waitForRequests(1);
  t.is(first && header(first, "content-length"), "11");
  t.is(first && header(first, "transfer-encoding"), undefined);
  t.is(first?.body.toString(), "hello world");

  const unsized = await request(client, key, { method: "PUT", chunks: ["abc", "defgh", "ij"] });
  t.is(unsized.status, 200);
  const second = (await owner.waitForRequests(2))[1];
  t.is(second && header(second, "transfer-encoding"), "chunked");
  t.is(second && header(second, "content-length"), undefined);
  t.is(second?.body.toString(), "abcdefghij");
  // The framing on the wire: the body as it came, in chunks (one a DATA read), then the last chunk.
  const bytes = owner.connections.map((c) => c.bytes.toString("latin1")).join("");
  const body = bytes.slice(bytes.lastIndexOf("\r\n\r\n", bytes.length - 6) + 4);
  t.regex(body, /^(?:[0-9a-f]+\r\n[a-j]+\r\n)+0\r\n\r\n$/);
});

test("OPTIONS * to an HTTP/1.1 member whose URL has a path prefix: the request line says *; other targets get the prefix", async (t) => {
  const h = await startRawProxy(names, {
    memberUrl: (b) => `${b.url}/api`,
    key: { from: { kind: "header", name: "x-key" } },
  });
  t.teardown(() => h.close());
  const client = await RawH2Client.connect(h.port);
  t.teardown(() => client.close());
  const extra: [string, string][] = [["x-key", "k"]];
  await client.send(request1(1, "*", { method: "OPTIONS", extra }), request1(3, "/things", { extra }));
  await client.when(
    () => client.of(FrameType.HEADERS, 1).length > 0 && client.of(FrameType.HEADERS, 3).length > 0,
    "both responses",
  );
  const bytes = h.backends.flatMap((b) => b.connections.map((c) => c.bytes.toString("latin1"))).join("");
  const lines = (bytes.match(/^[A-Z]+ \S+ HTTP\/1\.1$/gm) ?? []).sort();
  t.deepEqual(lines, ["GET /api/things HTTP/1.1", "OPTIONS * HTTP/1.1"]);
});

test("a client's trailing HEADERS reach an HTTP/1.1 member as trailer fields after the last chunk; fields that may not trail are dropped", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const client = await RawH2Client.connect(h.port);
  t.teardown(() => client.close());
  const key = "/uploads/1";
  await client.send(
    request1(1, key, { method: "POST", endStream: false }),
    data(1, "abc"),
    headersFrame(
      1,
      headerBlock([
        ["x-checksum", "42"],
        ["content-length", "3"],
        ["x-digest", "sha-256=x"],
      ]),
      { endStream: true },
    ),
  );
  await client.when(() => client.of(FrameType.HEADERS, 1).length > 0, "the response");
  const owner = h.backend(ring.ownerOf(key) as string);
  const bytes = await until(
    () => {
      const got = owner.connections.map((c) => c.bytes.toString("latin1")).join("");
      return got.includes("\r\n0\r\n") && got.endsWith("\r\n\r\n") ? got : undefined;
    },
    { what: "the last chunk at the member" },
  );
  t.is(
    bytes,
    `POST ${key} HTTP/1.1\r\nhost: localhost\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n` +
      "x-forwarded-host: localhost\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-checksum: 42\r\nx-digest: sha-256=x\r\n\r\n",
  );
});

test("a member's chunked body and trailers reach the h2 client as DATA and trailing HEADERS; connection headers do not", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  for (const b of h.backends) {
    b.script = scripts.raw(
      `${head(200, "OK", [
        ["Content-Type", "application/octet-stream"],
        ["Transfer-Encoding", "chunked"],
        ["Connection", "keep-alive, x-hop"],
        ["X-Hop", "dropped"],
        ["Keep-Alive", "timeout=5"],
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ])}4\r\nwiki\r\n5\r\npedia\r\n0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n`,
    );
  }
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const reply = await request(client, "/any");
  t.is(reply.status, 200);
  t.is(reply.text, "wikipedia");
  t.deepEqual(reply.headers["set-cookie"], ["a=1", "b=2"]);
  for (const name of ["connection", "keep-alive", "transfer-encoding", "x-hop"])
    t.is(reply.headers[name], undefined, name);
  t.like(reply.trailers, { "x-checksum": "abc", "grpc-status": "0" });
});

test("100 concurrent streams on one session each reach their key's owner", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const keys = Array.from({ length: 100 }, (_, i) => `/k/${i}`);
  const replies = await Promise.all(keys.map((key) => request(client, key)));
  for (const [i, key] of keys.entries()) t.is(replies[i]?.text, `${ring.ownerOf(key)} GET ${key}`);
  t.is(h.proxy.connections, 1, "one client connection, however many streams");
});

test("ringroute's own errors: JSON bodies for h2 clients, as for HTTP/1.1", async (t) => {
  const h = await startRawProxy(names, { key: { from: { kind: "header", name: "x-tenant" } } });
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const missing = await request(client, "/x");
  t.is(missing.status, 400);
  t.is(missing.headers["content-type"], "application/json; charset=utf-8");
  t.like(missing.json, { error: "missing_key" });
  const bad = await request(client, "/a/..%2f..%2fsecret", { headers: { "x-tenant": "t" } });
  t.is(bad.status, 400);
  t.like(bad.json, { error: "bad_path" });
  const connect = await request(client, "/x", { method: "OPTIONS", headers: { "x-tenant": "t" } });
  t.is(connect.status, 200, "OPTIONS with a key is routed");
  h.source.set([]);
  await until(() => h.cluster.ring.size === 0, { what: "an empty ring" });
  const none = await request(client, "/x", { headers: { "x-tenant": "t" } });
  t.is(none.status, 503);
  t.like(none.json, { error: "no_members" });
});

test("gRPC calls get ringroute's errors as trailers-only responses: grpc-status, grpc-message, :status 200", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(names, {
    observer: reports,
    key: { from: { kind: "header", name: "x-tenant" } },
    proxy: (c) => {
      c.retry.attempts = 0;
    },
  });
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const call = (headers: Record<string, string>) =>
    request(client, "/pkg.Svc/Get", {
      method: "POST",
      headers: { "content-type": "application/grpc+proto", te: "trailers", ...headers },
      chunks: [Buffer.from([0, 0, 0, 0, 0])],
    });
  const missing = await call({});
  t.true(missing.headersOnly, "trailers-only: the response ends with its HEADERS frame");
  t.is(missing.status, 200);
  t.is(missing.headers["content-type"], "application/grpc");
  t.is(missing.headers["grpc-status"], "3", "INVALID_ARGUMENT");
  t.regex(String(missing.headers["grpc-message"]), /no key/);
  t.is(missing.body.length, 0);

  // A member that cannot be reached: UNAVAILABLE.
  const key = "tenant-1";
  await h.backend(ring.ownerOf(key) as string).close();
  const unreachable = await call({ "x-tenant": key });
  t.true(unreachable.headersOnly);
  t.is(unreachable.headers["grpc-status"], "14", "UNAVAILABLE");
  // Counted under the error's HTTP status, so a 5xx ratio means the same for gRPC clients.
  t.deepEqual(
    reports.records.map((r) => [r.status, r.reason]),
    [
      [400, "missing_key"],
      [502, "upstream_unavailable"],
    ],
  );
});

test("a preface to a listener with http2: false gets today's 400 and close", async (t) => {
  const h = await startRawProxy(names, { http2: false });
  t.teardown(() => h.close());
  const client = await h.connect();
  await client.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const [response] = await client.waitForResponses(1);
  t.is(response?.status, 400);
  t.like(response && json(response), { error: "bad_request" });
  await client.waitForEnd();
});

test("reconfigure(http2: false) applies to new connections; a session already open goes on", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  t.is((await request(client, "/a")).status, 200);
  const config = (await import("../src/config.ts")).defaultConfig();
  h.proxy.reconfigure(config.proxy, config.key, false);
  t.is((await request(client, "/b")).status, 200, "the open session keeps serving");
  const raw = await RawClient.connect(h.port);
  t.teardown(() => raw.close());
  await raw.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  t.is((await raw.waitForResponses(1))[0]?.status, 400);
  h.proxy.reconfigure(config.proxy, config.key, true);
  const again = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(again));
  t.is((await request(again, "/c")).status, 200);
});

test("an HTTP/1.1 request that starts like the preface (PRI, POST, PUT) is still HTTP/1.1", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  for (const method of ["POST", "PUT", "PATCH"]) {
    const client = await h.connect();
    // Byte by byte: the sniff must decide on what it has, not wait for 24 bytes.
    for (const byte of `${method} /users/1 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`) await client.send(byte);
    const [response] = await client.waitForResponses(1);
    t.is(response?.status, 200, method);
    t.is(response?.body.toString(), `${ring.ownerOf("/users/1")} ${method} /users/1`);
    client.close();
  }
});

test("shutdown: sessions get GOAWAY, a stream in flight finishes, then the connection count is 0", async (t) => {
  const h = await startRawProxy(names);
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  for (const b of h.backends) {
    b.script = {
      async answer(request, c) {
        await held;
        c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone`);
        void request;
      },
    };
  }
  const client = await session(`http://127.0.0.1:${h.port}`);
  let goaway = false;
  client.on("goaway", () => (goaway = true));
  const inFlight = request(client, "/slow");
  await until(() => h.backends.some((b) => b.requests.length > 0), { what: "the request at a member" });
  t.is(h.proxy.connections, 1);
  const closing = h.proxy.close(10_000);
  await until(() => goaway, { what: "GOAWAY at the client" });
  release();
  const reply = await inFlight;
  t.is(reply.status, 200);
  t.is(reply.text, "done");
  await closing;
  t.is(h.proxy.connections, 0);
  await h.close();
});

test("a client that resets a stream cancels the member's request; the session goes on", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(names, { observer: reports });
  t.teardown(() => h.close());
  for (const b of h.backends) b.script = scripts.hang();
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const stream = client.request({ ":path": "/users/1" });
  stream.on("error", () => {});
  const member = h.backend(ring.ownerOf("/users/1") as string);
  await member.waitForRequests(1);
  stream.close(constants.NGHTTP2_CANCEL);
  await until(() => member.connections[0]?.closed, { what: "the member's connection closed" });
  await until(() => reports.records.length === 1, { what: "the access record" });
  t.like(reports.records[0], { outcome: "aborted", reason: "client_closed", protocol: "h2" });
  t.deepEqual(reports.clientErrors, ["aborted"]);
  t.deepEqual(reports.upstreamErrors, [], "the member is not blamed");
  for (const b of h.backends) b.script = scripts.echo();
  t.is((await request(client, "/users/2")).status, 200);
});

test("the same retry policy and ejection: a dead owner's stream goes to the next member, and the owner is ejected", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(names, {
    observer: reports,
    proxy: (c) => {
      c.eject.after = 2;
    },
  });
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));

  const key = "/users/1";
  const [owner, next] = ring.preferenceList(key) as [string, string];
  await h.backend(owner).close();
  for (let i = 0; i < 2; i++) {
    const reply = await request(client, key);
    t.is(reply.text, `${next} GET ${key}`, "the next member of the preference list");
  }
  t.deepEqual(reports.upstreamErrors, [
    { member: owner, reason: "connect" },
    { member: owner, reason: "connect" },
  ]);
  t.is(reports.failovers, 2);
  t.deepEqual(reports.ejections, [owner], "ejected after eject.after failures, as for HTTP/1.1");
  t.is((await request(client, key)).text, `${next} GET ${key}`);
  t.is(reports.upstreamErrors.length, 2, "an ejected owner is skipped, not tried");
});

test("a member's 503 is retried for a GET and a PUT with its whole body kept, not for a POST, as for HTTP/1.1", async (t) => {
  const reports = new Reports();
  const h = await startRawProxy(names, { observer: reports });
  t.teardown(() => h.close());
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const other = "/carts/9";
  const [busy, spare] = ring.preferenceList(other) as [string, string];
  h.backend(busy).script = scripts.raw(fixed(503, "busy"));
  const get = await request(client, other);
  t.is(get.text, `${spare} GET ${other}`, "a 503 moves a GET on");
  const post = await request(client, other, { method: "POST", chunks: ["data"] });
  t.is(post.status, 503, "a POST is not resent: the member's 503 is the answer");
  t.is(post.text, "busy");
  const put = await request(client, other, { method: "PUT", chunks: ["whole ", "body"] });
  t.is(put.text, `${spare} PUT ${other}`, "a PUT whose whole body is at hand is resent");
  const resent = h.backend(spare).requests.at(-1);
  t.is(resent?.body.toString(), "whole body", "with its body, byte for byte");
  t.deepEqual(
    reports.records.slice(-3).map((r) => [r.member, r.tried, r.outcome]),
    [
      [spare, 2, "ok"],
      [busy, 1, "upstream_status"],
      [spare, 2, "ok"],
    ],
  );
});

test("a member that answers before the body ended: the answer is passed on, the rest of the body refused with RST_STREAM(NO_ERROR)", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  for (const b of h.backends) {
    b.script = {
      early: true,
      answer(_request, c) {
        c.socket.write(fixed(413, "too big", [["Connection", "close"]]));
      },
    };
  }
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const stream = client.request({ ":method": "POST", ":path": "/upload/2" });
  stream.on("error", () => {});
  stream.write("the first part of a body that never ends");
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const status = new Promise<number>((resolve) =>
    stream.on("response", (headers) => resolve(Number(headers[":status"]))),
  );
  const closed = new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? -1)));
  t.is(await status, 413);
  t.is(await closed, constants.NGHTTP2_NO_ERROR);
  t.is(Buffer.concat(chunks).toString(), "too big");
  for (const b of h.backends) b.script = scripts.echo();
  t.is((await request(client, "/after")).status, 200, "the session goes on");
});

test("a preface followed by bytes that are not HTTP/2 frames: the session ends (GOAWAY) and the connection closes; no member hears of it", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const client = await h.connect();
  await client.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
  await client.waitForEnd("the proxy closing the connection");
  // What it got is HTTP/2 (SETTINGS, GOAWAY): never an HTTP/1.1 answer to the request hidden behind the preface.
  t.false(client.text.includes("HTTP/1.1"), client.preview);
  t.is(
    h.backends.reduce((n, b) => n + b.bytesSeen, 0),
    0,
  );
});

test("HEAD and 204: the response ends with its HEADERS frame, content-length kept as the member sent it", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  for (const b of h.backends) {
    b.script = scripts.raw((request) =>
      request.method === "HEAD"
        ? head(200, "OK", [["Content-Length", "42"]])
        : head(204, "No Content", [["X-Done", "yes"]]),
    );
  }
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const headReply = await request(client, "/a", { method: "HEAD" });
  t.is(headReply.status, 200);
  t.is(headReply.headers["content-length"], "42");
  t.is(headReply.body.length, 0);
  t.true(headReply.headersOnly);
  const none = await request(client, "/b", { method: "DELETE" });
  t.is(none.status, 204);
  t.is(none.headers["x-done"], "yes");
  t.true(none.headersOnly);
});

test("2 MiB up and 2 MiB down through one stream: every byte, in order, with flow control both ways", async (t) => {
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const down = Buffer.alloc(2 << 20);
  for (let i = 0; i < down.length; i++) down[i] = (i * 7) & 0xff;
  for (const b of h.backends) {
    b.script = {
      answer(_request, c) {
        c.socket.write(head(200, "OK", [["Content-Length", String(down.length)]]));
        c.socket.write(down);
      },
    };
  }
  const up = Buffer.alloc(2 << 20);
  for (let i = 0; i < up.length; i++) up[i] = (i * 13) & 0xff;
  const client = await session(`http://127.0.0.1:${h.port}`);
  t.teardown(() => closeSession(client));
  const chunks = Array.from({ length: 32 }, (_, i) => up.subarray(i * 65_536, (i + 1) * 65_536));
  const reply = await request(client, "/big", { method: "POST", chunks });
  t.is(reply.status, 200);
  t.true(reply.body.equals(down), "the response body whole");
  const received = h.backends.flatMap((b) => b.requests).at(-1);
  t.true(received?.body.equals(up), "the request body whole (chunked to the member)");
});
