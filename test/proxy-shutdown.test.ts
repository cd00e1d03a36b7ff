/**
 * Shutdown, reload and the access hook, on the engine itself: close() keeps
 * its deadline whatever the members do, responses during the drain close
 * their connections, idle keep-alive connections close between requests;
 * reconfigure() and reloadTls() apply to what starts afterwards; every
 * request leaves one access record.
 */
import { connect as tlsConnect } from "node:tls";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import type { AccessRecord, ProxyObserver } from "../src/proxy/observer.ts";
import { createProxy, type ProxyOptions } from "../src/proxy/server.ts";
import { TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";
import { header, json, RawClient, RecordingBackend, scripts } from "./helpers/raw.ts";
import { selfSigned } from "./helpers/tls.ts";
import { until, within } from "./helpers/until.ts";

async function setup(t: import("ava").ExecutionContext, extra: Partial<ProxyOptions> = {}) {
  const backend = await RecordingBackend.start("solo");
  const cluster = new Cluster({ source: new TestSource([{ name: "solo", url: backend.url }]) });
  await cluster.start();
  const clock = new ManualClock();
  const config = defaultConfig();
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy }, clock, ...extra });
  const { port } = await proxy.listen(0, "127.0.0.1");
  const clients: RawClient[] = [];
  const connect = async (): Promise<RawClient> => {
    const client = await RawClient.connect(port);
    clients.push(client);
    return client;
  };
  t.teardown(async () => {
    for (const client of clients) client.close();
    const closing = proxy.close(0);
    await clock.tick(1);
    await closing;
    await backend.close();
    await cluster.stop();
  });
  return { backend, cluster, clock, config, proxy, port, connect };
}

test("close() with a hung member resolves at its deadline and destroys the member connection", async (t) => {
  const { backend, clock, proxy, connect } = await setup(t);
  backend.script = scripts.hang();
  const client = await connect();
  await client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await backend.waitForRequests(1);
  let closed = false;
  const closing = proxy.close(3000).then(() => (closed = true));
  await clock.tick(2900);
  t.false(closed, "the request in flight still has time");
  await clock.tick(200);
  await within(closing, { what: "close() to resolve once its deadline passed" });
  await client.waitForEnd("the client connection to be cut at the deadline");
  await until(() => backend.connections.every((c) => c.closed), { what: "the member connection to be destroyed" });
  t.is(proxy.connections, 0);
});

test("during the drain a response carries Connection: close; an idle keep-alive connection closes between requests", async (t) => {
  const { backend, clock, proxy, connect } = await setup(t);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  backend.script = scripts.slow(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], () => gate);
  const idle = await connect();
  await idle.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  const busy = await connect();
  release();
  await idle.waitForResponses(1);
  let releaseSecond: () => void = () => {};
  const second = new Promise<void>((resolve) => (releaseSecond = resolve));
  backend.script = scripts.slow(["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"], () => second);
  await busy.send("GET /in-flight HTTP/1.1\r\nHost: x\r\n\r\n");
  await backend.waitForRequests(2);

  const closing = proxy.close(10_000);
  t.false(idle.ended, "an idle connection gets a moment for a request already on its way");
  await clock.tick(300);
  await idle.waitForEnd("the idle keep-alive connection to close");
  t.false(busy.ended, "a connection with a request in flight stays open");
  releaseSecond();
  const [reply] = await busy.waitForResponses(1);
  t.is(reply?.status, 200);
  t.is(reply?.body.toString(), "last");
  t.is(header(reply as NonNullable<typeof reply>, "connection"), "close");
  await busy.waitForEnd("the connection to close after its response");
  await within(closing, { what: "close() to resolve once every connection closed" });
});

test("every request leaves one access record; requestStarted and requestEnded pair up", async (t) => {
  const records: AccessRecord[] = [];
  let inFlight = 0;
  const observer: ProxyObserver = {
    request() {},
    upstreamError() {},
    failover() {},
    ejection() {},
    requestStarted: () => inFlight++,
    requestEnded: () => inFlight--,
    access: (record) => records.push(record),
  };
  const { connect } = await setup(t, { observer });
  const client = await connect();
  await client.send(
    "POST /items/7?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
  );
  await client.waitForEnd();
  t.is(inFlight, 0);
  t.is(records.length, 2);
  t.like(records[0], { method: "POST", path: "/items/7", status: 200, member: "solo", tried: 1, bytesIn: 5 });
  t.true((records[0]?.bytesOut ?? 0) > 0);
  t.is(records[0]?.client, "127.0.0.1");
  t.like(records[1], { method: "CONNECT", status: 405, member: "none", tried: 0, reason: "method_not_allowed" });
});

test("reconfigure() applies new limits to the requests that follow", async (t) => {
  const { config, proxy, connect } = await setup(t);
  const before = await connect();
  await before.send(`GET /${"a".repeat(200)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.is((await before.waitForResponses(1))[0]?.status, 200);
  const next = structuredClone(config.proxy);
  next.limits.url = 100;
  proxy.reconfigure(next, config.key);
  const after = await connect();
  await after.send(`GET /${"a".repeat(200)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await after.waitForEnd();
  const [reply] = after.responses().messages;
  t.is(reply?.status, 414);
  t.is(json(reply as NonNullable<typeof reply>).error, "uri_too_long");
});

/** One HTTPS GET over a raw TLS socket; the certificate's CN and the response text. */
function httpsGet(port: number, ca: string): Promise<{ cn: string; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: "127.0.0.1", ca, checkServerIdentity: () => undefined }, () => {
      socket.write("GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    });
    let text = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk));
    socket.on("end", () => resolve({ cn: String(socket.getPeerCertificate().subject?.CN), text }));
    socket.on("error", reject);
  });
}

test("with tls the listener speaks HTTPS, sets X-Forwarded-Proto: https, and reloadTls() serves the new certificate", async (t) => {
  const first = selfSigned("first.example");
  const { backend, proxy, port } = await setup(t, { tls: first });
  const one = await httpsGet(port, first.cert);
  t.is(one.cn, "first.example");
  t.regex(one.text, /^HTTP\/1\.1 200 /);
  const [request] = await backend.waitForRequests(1);
  t.is(header(request as NonNullable<typeof request>, "x-forwarded-proto"), "https");
  const second = selfSigned("second.example");
  proxy.reloadTls(second);
  const two = await httpsGet(port, second.cert);
  t.is(two.cn, "second.example");
});
