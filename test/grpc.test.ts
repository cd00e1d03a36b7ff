/**
 * gRPC end to end: `ringroute serve` in front of h2c members (declared
 * `protocol: h2c` in the static list), @grpc/grpc-js on both sides, the key
 * from metadata (`key.from: header:x-tenant`). `ringroute lookup` is the
 * oracle for who owns a tenant. Besides three well-behaved members the ring
 * holds members that misbehave in one way each: one turns every session
 * away with GOAWAY (last-stream-id 0), one refuses every stream
 * (REFUSED_STREAM), one resets calls (before or after its response
 * headers), and one runs in its own process to be killed mid-stream.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { constants, createServer, type Http2Server, type ServerHttp2Stream } from "node:http2";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import test from "ava";
import { stringify } from "yaml";
import { ringroute } from "./helpers/cli.ts";
import {
  chatStream,
  countStream,
  EchoClient,
  type EchoMember,
  echoService,
  type Message,
  type SeenCall,
  startEchoMember,
  tenant,
  unary,
} from "./helpers/grpc.ts";
import { closeSession, request, session } from "./helpers/h2.ts";
import { type Serving, startServe } from "./helpers/serve.ts";
import { until, within } from "./helpers/until.ts";

const ringFlags = ["--partitions", "64", "--replicas", "3", "--placement", "balanced", "--hash", "fnv1a32"];

/** A node:http2 member that records the streams it was sent and treats each with `onStream`. */
interface RawMember {
  server: Http2Server;
  url: string;
  streams: string[];
}

async function rawMember(onStream: (stream: ServerHttp2Stream, path: string) => void): Promise<RawMember> {
  const server = createServer();
  const m: RawMember = { server, url: "", streams: [] };
  server.on("session", (s) => s.on("error", () => {}));
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const path = String(headers[":path"]);
    m.streams.push(path);
    onStream(stream, path);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  m.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return m;
}

/** The member in its own process, to be killed as a crash would. */
interface ChildMember {
  child: ChildProcess;
  url: string;
  lines: () => string[];
}

async function childMember(name: string): Promise<ChildMember> {
  const script = fileURLToPath(new URL("./helpers/grpc.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, name], { stdio: ["ignore", "pipe", "inherit"] });
  process.once("exit", () => child.kill("SIGKILL"));
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const port = await until(() => /listening (\d+)/.exec(out)?.[1], {
    what: `member ${name} listening`,
    timeout: 60_000,
  });
  return { child, url: `http://127.0.0.1:${port}`, lines: () => out.split("\n").filter((l) => l.startsWith("{")) };
}

interface World {
  serve: Serving;
  proxy: string;
  echo: Record<string, EchoMember>;
  goaway: RawMember;
  refuse: RawMember;
  resets: RawMember;
  killed: ChildMember;
  /** Each tenant's owners, from `ringroute lookup`. */
  owners: Map<string, string[]>;
  dir: string;
  client: EchoClient;
}

let world: World;

test.before(async () => {
  const echo: Record<string, EchoMember> = {};
  for (const name of ["a", "b", "c"]) echo[name] = await startEchoMember(name);
  // GOAWAY with last-stream-id 0 as each session starts: no stream of it is ever processed.
  const goaway = await rawMember(() => {});
  goaway.server.on("session", (s) => s.goaway(constants.NGHTTP2_NO_ERROR, 0));
  const refuse = await rawMember((stream) => stream.close(constants.NGHTTP2_REFUSED_STREAM));
  // Resets every call: Late after its response headers, the others before any.
  const resets = await rawMember((stream, path) => {
    if (path.endsWith("/Late")) {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(Buffer.alloc(0), () => stream.destroy(new Error("member crashed")));
    } else stream.destroy(new Error("member crashed"));
  });
  const killed = await childMember("k");
  const members = [
    ...Object.values(echo).map((m) => ({ name: m.name, url: m.url, protocol: "h2c" })),
    { name: "g", url: goaway.url, protocol: "h2c" },
    { name: "r", url: refuse.url, protocol: "h2c" },
    { name: "x", url: resets.url, protocol: "h2c" },
    { name: "k", url: killed.url, protocol: "h2c" },
  ];
  const dir = await mkdtemp(join(tmpdir(), "ringroute-grpc-"));
  const config = join(dir, "ringroute.yaml");
  await writeFile(
    config,
    stringify({
      ring: { partitions: 64, replicas: 3, placement: "balanced", hash: "fnv1a32" },
      key: { from: "header:x-tenant" },
      membership: { static: { members } },
      proxy: {
        // Up to every other member of a preference list; no ejection, so each call meets the member the test means.
        retry: { attempts: 2, grpcMethods: ["/ringroute.test.Echo/Who", "/ringroute.test.Echo/Late"] },
        eject: { after: 0 },
      },
      access: { log: false },
      log: { level: "info", format: "json" },
    }),
  );
  const serve = await startServe(["--config", config]);
  const tenants = Array.from({ length: 400 }, (_, i) => `tenant-${i}`);
  const names = members.map((m) => m.name).join(",");
  const lookup = await ringroute(["lookup", "--members", names, ...ringFlags], `${tenants.join("\n")}\n`);
  if (lookup.code !== 0) throw new Error(`lookup failed: ${lookup.stderr}`);
  const owners = new Map<string, string[]>();
  for (const line of lookup.stdout.trim().split("\n")) {
    const row = JSON.parse(line) as { key: string; owners: string[] };
    owners.set(row.key, row.owners);
  }
  const proxy = serve.proxy.replace(/^http:\/\//, "");
  const client = new EchoClient(proxy, grpc.credentials.createInsecure());
  world = { serve, proxy, echo, goaway, refuse, resets, killed, owners, dir, client };
});

test.after.always(async () => {
  world?.client.close();
  await world?.serve.stop();
  for (const m of Object.values(world?.echo ?? {})) await m.stop();
  for (const m of [world?.goaway, world?.refuse, world?.resets]) m?.server.close();
  world?.killed.child.kill("SIGKILL");
  if (world?.dir) await rm(world.dir, { recursive: true, force: true });
});

const good = new Set(["a", "b", "c"]);

/** Tenants whose owners satisfy `want`, in order. */
function tenants(want: (owners: string[]) => boolean, count: number): string[] {
  const found = [...world.owners].filter(([, owners]) => want(owners)).map(([key]) => key);
  if (found.length < count) throw new Error(`only ${found.length} tenants fit`);
  return found.slice(0, count);
}

const seenBy = (member: EchoMember, key: string, path = echoService.who.path) =>
  member.seen.filter((c: SeenCall) => c.tenant === key && c.path === path).length;

test("unary: every call reaches the tenant's owner, as `ringroute lookup` names it", async (t) => {
  const keys = tenants((o) => good.has(o[0] as string), 30);
  for (const key of keys) {
    const reply = await unary(world.client, "who", { text: key }, tenant(key));
    t.is(reply.member, world.owners.get(key)?.[0], key);
    t.is(reply.tenant, key, "the metadata reached the member");
    t.is(reply.echo, key, "the message reached the member");
  }
  // Every well-behaved member owned some of them: the routing is not one member for all.
  t.is(new Set(keys.map((k) => world.owners.get(k)?.[0])).size, 3);
});

test("server streaming: every message of a call comes from the tenant's owner", async (t) => {
  for (const key of tenants((o) => good.has(o[0] as string), 6)) {
    const call = countStream(world.client, { n: 20 }, tenant(key));
    const messages: Message[] = [];
    call.on("data", (m: Message) => messages.push(m));
    const status = await within(once(call, "status"), { what: `the stream for ${key} to end`, timeout: 20_000 });
    t.is((status[0] as grpc.StatusObject).code, grpc.status.OK);
    t.deepEqual(
      messages.map((m) => m.i),
      Array.from({ length: 20 }, (_, i) => i),
    );
    t.true(messages.every((m) => m.member === world.owners.get(key)?.[0]));
  }
});

test("bidi streaming: each message echoed by the tenant's owner as it is sent", async (t) => {
  for (const key of tenants((o) => good.has(o[0] as string), 4)) {
    const call = chatStream(world.client, tenant(key));
    const replies: Message[] = [];
    call.on("data", (m: Message) => replies.push(m));
    for (let i = 0; i < 5; i++) {
      call.write({ text: `m${i}` });
      // The reply to each message arrives before the next is sent: the stream is not buffered to its end.
      await until(() => replies.length === i + 1, { what: `the echo of m${i}`, timeout: 20_000 });
    }
    call.end();
    const status = await within(once(call, "status"), { what: "the chat to end", timeout: 20_000 });
    t.is((status[0] as grpc.StatusObject).code, grpc.status.OK);
    t.deepEqual(
      replies.map((r) => r.echo),
      ["m0", "m1", "m2", "m3", "m4"],
    );
    t.true(replies.every((r) => r.member === world.owners.get(key)?.[0]));
  }
});

test("grpc-timeout is the call's deadline: DEADLINE_EXCEEDED from the proxy, and the member's call is cancelled", async (t) => {
  const [key] = tenants((o) => good.has(o[0] as string), 1) as [string];
  const owner = world.echo[world.owners.get(key)?.[0] as string] as EchoMember;
  // A raw h2 client with no deadline of its own: only the proxy can end the call.
  const h2 = await session(`http://${world.proxy}`);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]);
  const reply = await within(
    request(h2, echoService.slow.path, {
      method: "POST",
      headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "300m", "x-tenant": key },
      chunks: [body],
    }),
    { what: "the proxy to end the call at its deadline", timeout: 20_000 },
  );
  await closeSession(h2);
  const grpcStatus = reply.trailers?.["grpc-status"] ?? reply.headers["grpc-status"];
  t.is(String(grpcStatus), String(grpc.status.DEADLINE_EXCEEDED));
  t.true(reply.headersOnly, "ringroute's own gRPC error is a trailers-only response");
  await until(() => owner.cancelled.some((c) => c.tenant === key), { what: "the member to see the call cancelled" });
  // And a grpc-js client's own deadline ends as DEADLINE_EXCEEDED too.
  const error = await t.throwsAsync(
    unary(world.client, "slow", { ms: 60_000 }, tenant(key), { deadline: Date.now() + 300 }),
  );
  t.is((error as grpc.ServiceError).code, grpc.status.DEADLINE_EXCEEDED);
});

test("GOAWAY with last-stream-id 0: the call is retried transparently on the next owner, whatever its method", async (t) => {
  const keys = tenants((o) => o[0] === "g" && good.has(o[1] as string), 3);
  for (const key of keys) {
    // Put is not in proxy.retry.grpcMethods: only a call the member never processed may move on.
    const reply = await unary(world.client, "put", {}, tenant(key));
    t.is(reply.member, world.owners.get(key)?.[1], key);
  }
  t.deepEqual(world.goaway.streams, [], "the member processed no stream");
});

test("REFUSED_STREAM: the call is retried transparently on the next owner, whatever its method", async (t) => {
  const keys = tenants((o) => o[0] === "r" && good.has(o[1] as string), 3);
  for (const key of keys) {
    const reply = await unary(world.client, "put", {}, tenant(key));
    t.is(reply.member, world.owners.get(key)?.[1], key);
  }
  t.is(world.refuse.streams.length, keys.length, "each call was refused once, then sent on");
});

test("a reset before response headers: a listed method moves on, any other call fails UNAVAILABLE and no other member sees it", async (t) => {
  const [listed, unlisted] = tenants((o) => o[0] === "x" && good.has(o[1] as string), 2) as [string, string];
  const reply = await unary(world.client, "who", { text: "hi" }, tenant(listed));
  t.is(reply.member, world.owners.get(listed)?.[1], "Who is in proxy.retry.grpcMethods");
  const error = await t.throwsAsync(unary(world.client, "put", {}, tenant(unlisted)));
  t.is((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  for (const member of Object.values(world.echo)) t.is(seenBy(member, unlisted, echoService.put.path), 0);
});

test("a reset after response headers: not retried even for a listed method; UNAVAILABLE, and no other member sees it", async (t) => {
  const [key] = tenants((o) => o[0] === "x" && good.has(o[1] as string), 1) as [string];
  const before = world.resets.streams.filter((p) => p.endsWith("/Late")).length;
  const error = await t.throwsAsync(unary(world.client, "late", {}, tenant(key)));
  t.is((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  t.is(world.resets.streams.filter((p) => p.endsWith("/Late")).length, before + 1);
  for (const member of Object.values(world.echo)) t.is(seenBy(member, key, echoService.late.path), 0);
});

test("a member killed mid-stream: that call gets UNAVAILABLE, later calls go to the next owner", async (t) => {
  const [key] = tenants((o) => o[0] === "k" && good.has(o[1] as string), 1) as [string];
  const call = countStream(world.client, { n: 1000, every: 20 }, tenant(key));
  const messages: Message[] = [];
  call.on("data", (m: Message) => messages.push(m));
  call.on("error", () => {});
  await until(() => messages.length >= 3, { what: "the first messages from k", timeout: 30_000 });
  t.true(messages.every((m) => m.member === "k"));
  world.killed.child.kill("SIGKILL");
  // (events.once would reject on the 'error' event that comes with a failed status.)
  const status = await within(new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve)), {
    what: "the cut stream's status",
    timeout: 20_000,
  });
  t.is(status.code, grpc.status.UNAVAILABLE);
  for (let i = 0; i < 3; i++) {
    const reply = await unary(world.client, "put", {}, tenant(key));
    t.is(reply.member, world.owners.get(key)?.[1], "the next owner answers once k is gone");
  }
});

test("a gRPC call over HTTP/1.1 (chunked, TE: trailers) reaches the tenant's owner; grpc-status comes in the trailers", async (t) => {
  const [key] = tenants((o) => good.has(o[0] as string), 1) as [string];
  const owner = world.echo[world.owners.get(key)?.[0] as string] as EchoMember;
  // Put, which no other test sends for a tenant a well-behaved member owns: what the owner saw of it is this test's.
  const message = Buffer.from("{}");
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  const body = Buffer.concat([frame, message]);
  const url = new URL(world.serve.proxy);
  const socket = connect(Number(url.port), url.hostname);
  t.teardown(() => socket.destroy());
  let text = "";
  socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk));
  socket.write(
    `POST ${echoService.put.path} HTTP/1.1\r\nHost: ringroute\r\nx-tenant: ${key}\r\ncontent-type: application/grpc\r\n` +
      `te: trailers\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body.toString("latin1")}\r\n0\r\n\r\n`,
  );
  await until(() => text.endsWith("\r\n\r\n") && /\r\n0\r\n/.test(text), { what: `the whole response: ${text}` });
  t.regex(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.regex(text, /\r\ntransfer-encoding: chunked\r\n/i);
  t.regex(text, new RegExp(`"member":"${owner.name}"`));
  t.regex(text, /\r\n0\r\n(?:[^\r]*\r\n)*grpc-status: 0\r\n/, "the trailers reach a client that said TE: trailers");
  t.is(seenBy(owner, key, echoService.put.path), 1);
});
