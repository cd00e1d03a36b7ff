/**
 * Upgrades: WebSocket is tunnelled after the member's 101; any other
 * Upgrade token (h2c, custom protocols) is either tunnelled the same way or
 * forwarded as a plain request without the Upgrade, never a closed socket.
 */
import test, { type ExecutionContext } from "ava";
import { fixed, head, header, headerValues, type Message, type Script, startRawProxy } from "./helpers/raw.ts";
import { until } from "./helpers/until.ts";

/**
 * A member that accepts an Upgrade to `protocol` with a 101 and then echoes
 * every byte prefixed with "echo:", and answers a plain request with 200.
 */
function accepting(protocol: string, extra: [string, string][] = []): Script {
  return {
    answer(request, c) {
      const asked = header(request, "upgrade");
      if (asked?.toLowerCase() !== protocol) {
        c.socket.write(fixed(200, `plain ${request.method} ${request.url}`));
        return;
      }
      c.socket.write(head(101, "Switching Protocols", [["Connection", "Upgrade"], ["Upgrade", protocol], ...extra]));
      c.tunnel((chunk) => c.socket.write(Buffer.concat([Buffer.from("echo:"), chunk])));
    },
  };
}

/** Sends an Upgrade request; the member's 101 must lead to a working tunnel, or its 200 to a plain exchange. */
async function upgradeOrPlain(t: ExecutionContext, protocol: string, request: string): Promise<void> {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = accepting(protocol);
  const client = await h.connect();
  await client.send(request);
  await until(() => client.responses().messages.some((m) => m.status >= 101) || client.ended, {
    what: "the member's answer to the Upgrade",
    timeout: 10_000,
  });
  const [reply] = client.responses().messages;
  const [seen] = member.requests;
  t.is(seen?.url, "/x");
  if (headerValues(seen as Message, "upgrade").length > 0) {
    // Tunnelled: the 101 reaches the client and bytes flow both ways.
    t.is(reply?.status, 101, client.preview);
    t.is(header(reply as Message, "upgrade"), protocol);
    await client.send("ping");
    await until(() => client.text.endsWith("echo:ping"), { what: "the echo through the tunnel", timeout: 10_000 });
  } else {
    // Forwarded as a plain request: the member's 200 reaches the client whole.
    t.is(reply?.status, 200, client.preview);
    t.is(reply?.body.toString(), "plain GET /x");
    t.false(reply?.upgrade);
  }
}

test("an h2c Upgrade (curl --http2) gets the member's 200 when the member declines it", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const client = await h.connect();
  await client.send(
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
  );
  const [reply] = await client.waitForResponses(1, [], 10_000);
  t.is(reply?.status, 200);
  t.is(reply?.body.toString(), "solo GET /x");
  t.deepEqual(
    h.backend("solo").requests.map((r) => `${r.method} ${r.url}`),
    ["GET /x"],
  );
});

test("an h2c Upgrade is tunnelled after the member's 101, or forwarded without the Upgrade", async (t) => {
  await upgradeOrPlain(
    t,
    "h2c",
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
  );
});

test("a custom Upgrade token is tunnelled after the member's 101, or forwarded without the Upgrade", async (t) => {
  await upgradeOrPlain(t, "custom/1", "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: custom/1\r\n\r\n");
});

test("a WebSocket upgrade reaches the member with its key, and bytes sent with the head follow the 101", async (t) => {
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = accepting("websocket", [["Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]]);
  const client = await h.connect();
  await client.send(
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nearly",
  );
  await until(() => client.text.includes("echo:early"), { what: "the early bytes echoed", timeout: 10_000 });
  const [reply] = client.responses().messages;
  t.is(reply?.status, 101);
  t.is(header(reply as Message, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  await client.send("ping");
  await until(() => client.text.endsWith("echo:ping"), { what: "the echo through the tunnel", timeout: 10_000 });

  const [seen] = member.requests;
  t.is(header(seen as Message, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  t.is(header(seen as Message, "upgrade")?.toLowerCase(), "websocket");
  const wire = member.connections[0]?.bytes.toString("latin1") ?? "";
  t.true(wire.endsWith("\r\n\r\nearlyping"), "the member got the head, then exactly the client's bytes");
});

test("an idle tunnel is closed after timeouts.tunnel, both sides", async (t) => {
  const h = await startRawProxy(["solo"], {
    proxy(c) {
      c.timeouts.tunnel = 300;
    },
  });
  t.teardown(() => h.close());
  const member = h.backend("solo");
  member.script = accepting("websocket", [["Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]]);
  const client = await h.connect();
  await client.send(
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  await client.waitForEnd("the proxy to close the idle tunnel", 10_000);
  t.is(client.responses().messages[0]?.status, 101);
  await until(() => member.connections.every((c) => c.closed), {
    what: "the member side of the tunnel to close",
    timeout: 10_000,
  });
});
