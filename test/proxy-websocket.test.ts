import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import test from "ava";
import WebSocket, { WebSocketServer } from "ws";
import { Ring } from "../src/ring/ring.ts";
import { startProxy } from "./helpers/backends.ts";

const names = ["alpha", "bravo", "charlie"];

/** Each backend accepts WebSockets and greets with its name and the path it was asked for. */
async function startWithWebSockets(key?: string) {
  const h = await startProxy(names, key === undefined ? {} : { key: { from: key } });
  for (const b of h.backends) {
    const wss = new WebSocketServer({ server: b.server });
    wss.on("connection", (socket, req) => {
      socket.send(JSON.stringify({ backend: b.name, url: req.url, forwardedFor: req.headers["x-forwarded-for"] }));
      socket.on("message", (data) => socket.send(`echo:${data}`));
    });
  }
  return h;
}

interface Hello {
  backend: string;
  url: string;
  forwardedFor: string;
}

function open(url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket; hello: Hello }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once("message", (data) => resolve({ socket, hello: JSON.parse(String(data)) }));
    socket.once("unexpected-response", (_req, res: IncomingMessage) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () =>
        reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, body })),
      );
    });
    socket.once("error", reject);
  });
}

test("WebSocket upgrades are routed by key to the key's owner and carried both ways", async (t) => {
  const h = await startWithWebSockets();
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const base = h.url.replace("http:", "ws:");
  for (const room of ["/rooms/1", "/rooms/2", "/rooms/3", "/rooms/4", "/rooms/5"]) {
    const { socket, hello } = await open(`${base}${room}?token=x`);
    t.is(hello.backend, ring.ownerOf(room) as string, room);
    t.is(hello.url, `${room}?token=x`);
    t.is(hello.forwardedFor, "127.0.0.1");
    const echoed = new Promise((resolve) => socket.once("message", (data) => resolve(String(data))));
    socket.send("ping");
    t.is(await echoed, "echo:ping");
    socket.close();
  }
});

test("a WebSocket upgrade keyed by header follows the header, and without its key gets 400", async (t) => {
  const h = await startWithWebSockets("header:x-room");
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const base = h.url.replace("http:", "ws:");
  for (const room of ["lobby", "kitchen", "attic"]) {
    const { socket, hello } = await open(`${base}/socket`, { "x-room": room });
    t.is(hello.backend, ring.ownerOf(room) as string);
    socket.close();
  }
  const error = await t.throwsAsync(open(`${base}/socket`));
  t.is((error as Error & { status: number }).status, 400);
  t.is(JSON.parse((error as Error & { body: string }).body).error, "missing_key");
});

test("a WebSocket upgrade whose owner is down fails over like any GET; with every member down it gets a JSON 502", async (t) => {
  const h = await startWithWebSockets();
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const room = "/rooms/9";
  const [owner, next] = ring.preferenceList(room) as [string, string];
  await h.backend(owner).kill();
  const { socket, hello } = await open(`${h.url.replace("http:", "ws:")}${room}`);
  t.is(hello.backend, next, "the next member of the preference list took the upgrade");
  socket.close();
  for (const b of h.backends) if (b.name !== owner) await b.kill();
  const error = await t.throwsAsync(open(`${h.url.replace("http:", "ws:")}${room}`));
  t.is((error as Error & { status: number }).status, 502);
  const body = JSON.parse((error as Error & { body: string }).body);
  t.like(body, { error: "upstream_unavailable", partition: ring.partitionOf(room), tried: names.length });
  t.is(body.member, undefined, "member addresses stay out of the body unless proxy.errors.detail is on");
});

/** Sends a raw upgrade request and returns the first text frame the member sends back. */
function rawUpgrade(port: number, target: string): Promise<Hello> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString();
      if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(head.split("\r\n")[0]));
      const frame = buffer.subarray(end + 4);
      // A server's text frame: 0x81, a 7-bit length (our greetings are short), the payload.
      if (frame.length < 2 || frame.length < 2 + ((frame[1] as number) & 0x7f)) return;
      socket.destroy();
      resolve(JSON.parse(frame.subarray(2, 2 + ((frame[1] as number) & 0x7f)).toString()));
    });
    socket.on("error", reject);
    socket.write(
      `GET ${target} HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
  });
}

test("an absolute-form upgrade target is routed by its path and reaches the member with its query intact", async (t) => {
  const h = await startWithWebSockets();
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const port = Number(new URL(h.url).port);
  const hello = await rawUpgrade(port, "http://elsewhere.example/rooms/7?token=y");
  t.is(hello.backend, ring.ownerOf("/rooms/7") as string);
  t.is(hello.url, "/rooms/7?token=y");
});
