/**
 * A socket the proxy answered by itself is closed after the answer: it waits
 * a moment for the client's FIN, reading and dropping what comes (a lingering
 * close, as nginx's), then is destroyed, so a client that never closes holds
 * no descriptor of the proxy's.
 */
import test from "ava";
import { type RawClient, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

function serverConnections(server: import("node:net").Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, n) => (error ? reject(error) : resolve(n))));
}

test("1000 clients that get 408 and never close leave no descriptor open after the lingering close", async (t) => {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.timeouts.head = 300;
    },
  });
  t.teardown(() => h.close());
  const clients: RawClient[] = [];
  for (let i = 0; i < 1000; i++) {
    const client = await h.connect();
    // Half a request head, and never anything more: not even a FIN.
    client.socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n");
    clients.push(client);
  }
  await Promise.all(clients.map((c) => c.when(() => c.text.includes("\r\n\r\n{"), "the 408", 60_000)));
  for (const c of clients) t.regex(c.text, /^HTTP\/1\.1 408 /);
  await until(async () => (await serverConnections(h.proxy.server)) === 0, {
    what: "every answered socket to be closed at the server",
    timeout: 60_000,
  });
  t.true(
    clients.every((c) => c.ended),
    "every client saw the proxy's FIN",
  );
  t.is(h.proxy.connections, 0);
});

test("a client that closes after the answer ends the lingering close at once", async (t) => {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.timeouts.head = 200;
    },
  });
  t.teardown(() => h.close());
  const client = await h.connect();
  client.socket.write("GET /slow HTTP/1.1\r\n");
  await client.waitForEnd("the 408 and the proxy's FIN");
  t.regex(client.text, /^HTTP\/1\.1 408 /);
  // Bytes sent after the answer are read and dropped; the client's FIN closes the socket.
  client.socket.write("more bytes nobody reads");
  client.finish();
  await until(async () => (await serverConnections(h.proxy.server)) === 0, {
    what: "the socket to close on the client's FIN",
    timeout: 4_000,
  });
  t.pass();
});
