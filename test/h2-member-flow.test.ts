/**
 * h2 clients through the proxy to an h2c member: curl's request as the
 * member gets it, and flow control both ways: a client that
 * stops reading stops the member (its writes block after a bounded number of
 * bytes), a member that stops reading stops the client; nothing is buffered
 * without bound in between, and every byte arrives once both go on.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { type ClientHttp2Stream, createServer, type Http2Server, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { parseConfig } from "../src/config.ts";
import { StaticSource } from "../src/membership/static.ts";
import { createProxy, type RoutingProxy } from "../src/proxy/server.ts";
import { closeSession, curl, request, session } from "./helpers/h2.ts";
import { until } from "./helpers/until.ts";

/** Resolves with `read()` once it has not changed over three polls 100 ms apart: the flow has come to rest. */
async function settled(read: () => number, what: string): Promise<number> {
  let last = -1;
  let same = 0;
  await until(
    () => {
      const now = read();
      same = now === last ? same + 1 : 0;
      last = now;
      return same >= 3;
    },
    { what, interval: 100 },
  );
  return last;
}

const total = 16 * 1024 * 1024;
const chunk = Buffer.alloc(64 * 1024, 7);
const digest = (buffers: Buffer[]) => createHash("sha256").update(Buffer.concat(buffers)).digest("hex");
const expected = digest(Array.from({ length: total / chunk.length }, () => chunk));

interface Rig {
  proxy: RoutingProxy;
  url: string;
  member: Http2Server;
  close(): Promise<void>;
}

async function rig(onStream: (stream: ServerHttp2Stream) => void): Promise<Rig> {
  const member = createServer();
  member.on("session", (s) => s.on("error", () => {}));
  member.on("stream", (stream) => {
    stream.on("error", () => {});
    onStream(stream);
  });
  member.listen(0, "127.0.0.1");
  await once(member, "listening");
  const url = `http://127.0.0.1:${(member.address() as AddressInfo).port}`;
  const cluster = new Cluster({ source: new StaticSource([{ name: "m", url, protocol: "h2c" }]), ring: {} });
  await cluster.start();
  const config = parseConfig({ key: { from: "header:x-tenant" } });
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy } });
  const { port } = await proxy.listen(0, "127.0.0.1");
  let closed = false;
  return {
    proxy,
    url: `http://127.0.0.1:${port}`,
    member,
    async close() {
      if (closed) return;
      closed = true;
      await proxy.close(1000);
      await cluster.stop();
      member.close();
    },
  };
}

test("a client that stops reading stops the member; every byte arrives once it reads again", async (t) => {
  let written = 0;
  let blocked = false;
  const r = await rig((stream) => {
    stream.respond({ ":status": 200 });
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!stream.write(chunk)) {
          blocked = true;
          stream.once("drain", pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
  t.teardown(() => r.close());
  const client = await session(r.url);
  t.teardown(() => client.destroy());
  const stream: ClientHttp2Stream = client.request({ ":path": "/download", "x-tenant": "t1" }, { endStream: true });
  stream.pause();
  const [headers] = (await once(stream, "response")) as [Record<string, string>];
  t.is(Number(headers[":status"]), 200);
  await until(() => blocked, { what: "the member's writes to block" });
  // Windows and buffers between them fill, then nothing moves: the bytes in between stay bounded.
  const stalled = await settled(() => written, "the member's writes to come to rest");
  t.true(stalled < total, "the member could not send it all to a client that reads nothing");
  t.true(stalled <= 4 * 1024 * 1024, `the member wrote ${stalled} bytes towards a client that reads none`);
  const received: Buffer[] = [];
  stream.on("data", (c: Buffer) => received.push(c));
  stream.resume();
  await once(stream, "end");
  t.is(digest(received), expected);
  await closeSession(client);
});

test("a member that stops reading the request body stops the client; every byte arrives once it reads again", async (t) => {
  let memberStream: ServerHttp2Stream | undefined;
  const got: Buffer[] = [];
  const r = await rig((stream) => {
    memberStream = stream;
    stream.pause();
    stream.on("data", (c: Buffer) => got.push(c));
    stream.on("end", () => {
      stream.respond({ ":status": 200 });
      stream.end(digest(got));
    });
  });
  t.teardown(() => r.close());
  const client = await session(r.url);
  t.teardown(() => client.destroy());
  const stream = client.request({ ":method": "POST", ":path": "/upload", "x-tenant": "t1" });
  let sent = 0;
  let blocked = false;
  const pump = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!stream.write(chunk)) {
        blocked = true;
        stream.once("drain", pump);
        return;
      }
    }
    stream.end();
  };
  pump();
  await until(() => memberStream !== undefined && blocked, { what: "the client's writes to block" });
  const stalled = await settled(() => sent, "the client's writes to come to rest");
  t.true(stalled < total, "the client could not send it all to a member that reads nothing");
  t.true(stalled <= 4 * 1024 * 1024, `the client sent ${stalled} bytes towards a member that reads none`);
  const response: Buffer[] = [];
  stream.on("data", (c: Buffer) => response.push(c));
  memberStream?.resume();
  await once(stream, "end");
  t.is(Buffer.concat(response).toString(), expected);
  await closeSession(client);
});

test("curl over h2c prior knowledge reaches an h2c member: the member's HTTP/2 request, and its answer back", async (t) => {
  let seen: Record<string, unknown> = {};
  const r = await rig((stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      stream.respond({ ":status": 201, "x-member": "m" });
      stream.end(`got ${Buffer.concat(chunks).toString()}`);
    });
  });
  t.teardown(() => r.close());
  r.member.once("stream", (_stream, headers) => {
    seen = { ...headers };
  });
  const run = await curl([
    "--http2-prior-knowledge",
    "-i",
    "-H",
    "x-tenant: t1",
    "--data-binary",
    "hello",
    `${r.url}/items/1?x=y`,
  ]);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /^HTTP\/2 201/);
  t.regex(run.stdout, /x-member: m/);
  t.regex(run.stdout, /got hello$/);
  t.is(seen[":method"], "POST");
  t.is(seen[":path"], "/items/1?x=y");
  t.is(seen["x-tenant"], "t1");
  t.is(seen["content-length"], "5");
  t.truthy(seen["x-forwarded-for"], "the forwarding headers of this hop");
});

test("a member's body of known length ends the client's stream in its last DATA frame; its trailers go on when the client asked (te: trailers) or the member announced them (trailer)", async (t) => {
  const last = { path: "" };
  const r = await rig((stream) => {
    const head: Record<string, string | number> = { ":status": 200, "content-length": 5 };
    if (last.path === "/announced") head.trailer = "x-sum";
    stream.respond(head, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "x-sum": "15" }));
    stream.end("hello");
  });
  t.teardown(() => r.close());
  r.member.prependListener("stream", (_stream, headers) => {
    last.path = String(headers[":path"]);
  });
  // nghttp prints every frame it gets: the body and END_STREAM come in one DATA frame; no trailing HEADERS.
  const { stdout } = await promisify(execFile)("nghttp", ["-nv", "-H", "x-tenant: t1", `${r.url}/plain`], {
    encoding: "utf8",
    timeout: 10_000,
  });
  t.regex(stdout, /recv DATA frame <length=5, flags=0x01,/);
  t.notRegex(stdout, /x-sum/, "trailers the client did not ask for and the member did not announce are dropped");
  t.notRegex(stdout, /recv DATA frame <length=0/);

  const client = await session(r.url);
  t.teardown(() => closeSession(client));
  const asked = await request(client, "/asked", { headers: { "x-tenant": "t1", te: "trailers" } });
  t.is(asked.text, "hello");
  t.like(asked.trailers, { "x-sum": "15" });
  const announced = await request(client, "/announced", { headers: { "x-tenant": "t1" } });
  t.is(announced.text, "hello");
  t.is(announced.headers.trailer, "x-sum");
  t.like(announced.trailers, { "x-sum": "15" });
  const plain = await request(client, "/plain", { headers: { "x-tenant": "t1" } });
  t.is(plain.text, "hello");
  t.is(plain.trailers, undefined);
});
