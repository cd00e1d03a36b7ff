/**
 * ringroute's own 5xx bodies say what happened (an error code, the
 * partition, how many members were tried) but, by default, no member
 * address and no errno; `proxy.errors.detail: true` puts them back.
 */
import test, { type ExecutionContext } from "ava";
import type { ProxyConfig } from "../src/config.ts";
import { header, json, type Message, type RawHarness, scripts, startRawProxy } from "./helpers/raw.ts";

async function proxy(t: ExecutionContext, change: (c: ProxyConfig) => void = () => {}): Promise<RawHarness> {
  const h = await startRawProxy(["solo"], { proxy: change });
  t.teardown(() => h.close());
  return h;
}

async function get(h: RawHarness): Promise<Message> {
  const client = await h.connect();
  await client.send("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const [reply] = await client.waitForResponses(1, [], 10_000);
  if (reply === undefined) throw new Error("no response");
  return reply;
}

/** Checks a JSON 5xx body that reveals nothing of the member's address or the system error. */
function discreet(t: ExecutionContext, reply: Message, status: number, port: number): void {
  t.is(reply.status, status);
  t.regex(header(reply, "content-type") ?? "", /^application\/json/);
  const body = json(reply);
  t.is(typeof body.error, "string");
  t.is(typeof body.partition, "number", "the partition is reported");
  const text = reply.body.toString();
  for (const secret of ["127.0.0.1", String(port), "ECONN", "EPIPE", "errno", "syscall", "socket hang up"]) {
    t.false(text.includes(secret), `${secret} in ${text}`);
  }
}

test("a member that refuses connections: 502 JSON without its address or errno", async (t) => {
  const h = await proxy(t);
  const member = h.backend("solo");
  await member.close();
  discreet(t, await get(h), 502, member.port);
});

test("with proxy.errors.detail the 502 names the address and the errno", async (t) => {
  const h = await proxy(t, (c) => (c.errors.detail = true));
  const member = h.backend("solo");
  await member.close();
  const reply = await get(h);
  t.is(reply.status, 502);
  const text = reply.body.toString();
  t.true(text.includes(`127.0.0.1:${member.port}`), text);
  t.true(text.includes("ECONNREFUSED"), text);
});

test("a member that never answers: 504 JSON without its address", async (t) => {
  const h = await proxy(t, (c) => (c.timeouts.response = 300));
  const member = h.backend("solo");
  member.script = scripts.hang();
  discreet(t, await get(h), 504, member.port);
});

test("a member that resets before answering: 502 JSON without its address or errno", async (t) => {
  const h = await proxy(t);
  const member = h.backend("solo");
  member.script = {
    answer(_request, c) {
      c.socket.resetAndDestroy();
    },
  };
  discreet(t, await get(h), 502, member.port);
});
