/**
 * Plain HTTP sent to the TLS listener gets a 400 that says the port speaks
 * HTTPS, then the connection closes (as nginx answers), not an empty reply;
 * TLS clients are unaffected, and nothing of the plain request reaches a
 * member. Time is a manual clock.
 */
import { connect as tlsConnect } from "node:tls";
import test, { type ExecutionContext } from "ava";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import { createProxy } from "../src/proxy/server.ts";
import { TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";
import { header, json, RawClient, RecordingBackend } from "./helpers/raw.ts";
import { selfSigned } from "./helpers/tls.ts";
import { until } from "./helpers/until.ts";

const material = selfSigned("tls.example");

async function setup(t: ExecutionContext) {
  const backend = await RecordingBackend.start("solo");
  const cluster = new Cluster({ source: new TestSource([{ name: "solo", url: backend.url }]) });
  await cluster.start();
  const clock = new ManualClock();
  const config = defaultConfig();
  config.proxy.headers.forwarded = false;
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy }, clock, tls: material });
  const { port } = await proxy.listen(0, "127.0.0.1");
  const clients: RawClient[] = [];
  t.teardown(async () => {
    for (const client of clients) client.close();
    const closing = proxy.close(0);
    await clock.tick(1);
    await closing;
    await backend.close();
    await cluster.stop();
  });
  const connect = async () => {
    const client = await RawClient.connect(port);
    clients.push(client);
    return client;
  };
  return { backend, clock, port, connect };
}

test("plain HTTP to the TLS listener gets 400 saying the port speaks HTTPS, then close", async (t) => {
  const { backend, connect } = await setup(t);
  const client = await connect();
  await client.send("GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n");
  const [reply] = await client.waitForResponses(1);
  await client.waitForEnd("the proxy to close after its 400");
  t.is(reply?.status, 400, client.preview);
  t.is(header(reply as never, "connection"), "close");
  t.regex(header(reply as never, "content-type") ?? "", /^application\/json/);
  const body = json(reply as never);
  t.is(body.error, "https_required");
  t.regex(body.message, /HTTPS/);
  t.is(client.responses().messages.length, 1, "one answer, nothing else");
  t.is(backend.connections.length, 0, "nothing reached the member");
});

test("a client that keeps the connection open after the 400 is closed at the linger deadline", async (t) => {
  const { clock, connect } = await setup(t);
  const client = await connect();
  await client.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  await client.waitForResponses(1);
  // The proxy sent FIN with its answer and reads on (dropping the bytes) until the linger deadline.
  await clock.tick(1_100);
  // The socket is gone now: bytes sent to it are answered with a reset (seen on the write after).
  await until(
    async () => {
      await client.send("more body bytes").catch(() => {});
      return client.reset;
    },
    { what: "the socket to be closed at the deadline", interval: 50 },
  );
  t.true(client.reset);
});

test("a connection that sends nothing is dropped after timeouts.head, not held", async (t) => {
  const { clock, connect } = await setup(t);
  const client = await connect();
  await clock.tick(9_000);
  t.false(client.ended, "still within timeouts.head (10s)");
  await clock.tick(1_100);
  await client.waitForEnd("the idle connection to be dropped");
  t.is(client.received.length, 0);
});

test("TLS clients still get through, and the member gets exactly their request", async (t) => {
  const { backend, port } = await setup(t);
  const text = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ port, host: "127.0.0.1", ca: material.cert, checkServerIdentity: () => undefined });
    socket.on("secureConnect", () => socket.write("GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    let received = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => (received += chunk));
    socket.on("end", () => resolve(received));
    socket.on("error", reject);
  });
  t.regex(text, /^HTTP\/1\.1 200 /);
  t.regex(text, /solo GET \/tls$/);
  t.is(backend.connections.map((c) => c.bytes.toString("latin1")).join(""), "GET /tls HTTP/1.1\r\nHost: x\r\n\r\n");
});
