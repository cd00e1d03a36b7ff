/**
 * gRPC over TLS to the proxy (h2 by ALPN), h2c from the proxy to its members:
 * the two halves compose, and calls still reach `ringroute lookup`'s owner.
 */
import * as grpc from "@grpc/grpc-js";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { parseConfig } from "../src/config.ts";
import { StaticSource } from "../src/membership/static.ts";
import { createProxy } from "../src/proxy/server.ts";
import { ringroute } from "./helpers/cli.ts";
import { countStream, EchoClient, type Message, startEchoMember, tenant, unary } from "./helpers/grpc.ts";
import { selfSigned } from "./helpers/tls.ts";
import { within } from "./helpers/until.ts";

test("a grpc-js client over TLS: unary and streaming calls reach the tenant's owner over h2c", async (t) => {
  const members = [await startEchoMember("a"), await startEchoMember("b"), await startEchoMember("c")];
  const source = new StaticSource(members.map((m) => ({ name: m.name, url: m.url, protocol: "h2c" as const })));
  const cluster = new Cluster({ source, ring: {} });
  await cluster.start();
  const config = parseConfig({ key: { from: "header:x-tenant" } });
  const certificate = selfSigned("proxy");
  const proxy = createProxy({
    cluster,
    config: { key: config.key, proxy: config.proxy },
    tls: { cert: certificate.cert, key: certificate.key },
  });
  const { port } = await proxy.listen(0, "127.0.0.1");
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(certificate.cert)));
  t.teardown(async () => {
    client.close();
    await proxy.close(1000);
    await cluster.stop();
    for (const m of members) await m.stop();
  });

  const keys = Array.from({ length: 12 }, (_, i) => `tls-tenant-${i}`);
  const lookup = await ringroute(["lookup", "--members", "a,b,c"], `${keys.join("\n")}\n`);
  t.is(lookup.code, 0, lookup.stderr);
  const owners = new Map(
    lookup.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { key: string; owners: string[] })
      .map((row) => [row.key, row.owners[0]]),
  );
  for (const key of keys) {
    const reply = await unary(client, "who", { text: key }, tenant(key));
    t.is(reply.member, owners.get(key), key);
  }
  const [key] = keys as [string];
  const call = countStream(client, { n: 10 }, tenant(key));
  const messages: Message[] = [];
  call.on("data", (m: Message) => messages.push(m));
  const status = await within(new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve)), {
    what: "the stream to end",
    timeout: 20_000,
  });
  t.is(status.code, grpc.status.OK);
  t.is(messages.length, 10);
  t.true(messages.every((m) => m.member === owners.get(key)));
});
