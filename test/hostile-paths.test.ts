/**
 * A member URL's path prefix confines requests: with a member at
 * `http://host/api`, no request reaches anything outside `/api`, however
 * its dot-segments are spelled. A request is either normalised (dot-segments
 * removed, RFC 3986 §5.2.4) or refused with 400 and reaches no member.
 */
import { posix } from "node:path";
import test, { type ExecutionContext } from "ava";
import { lookupTarget } from "../src/commands/lookup.ts";
import { defaultConfig } from "../src/config.ts";
import { header, json, type RawHarness, startRawProxy } from "./helpers/raw.ts";

async function proxy(t: ExecutionContext): Promise<RawHarness> {
  const h = await startRawProxy(["solo"], { memberUrl: (b) => `${b.url}/api` });
  t.teardown(() => h.close());
  return h;
}

/** What a member that decodes percent-escapes and resolves dot-segments would serve for `target`. */
function resolvedPath(target: string): string {
  const path = target.split("?")[0] as string;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    decoded = path;
  }
  return posix.normalize(decoded);
}

async function send(h: RawHarness, target: string) {
  const client = await h.connect();
  await client.send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const [reply] = await client.waitForResponses(1, [], 10_000);
  return { reply, client };
}

const escapes = [
  "/../secret",
  "/%2e%2e/secret",
  "/%2E%2E/secret",
  "/.%2e/secret",
  "/./../secret",
  "/a/../../secret",
  "/..%2fsecret",
  "/%2e%2e%2fsecret",
  "/a/..%2f..%2fsecret",
  "/..",
];

for (const target of escapes) {
  test(`GET ${target} against a member at /api never reaches outside /api`, async (t) => {
    const h = await proxy(t);
    const { reply, client } = await send(h, target);
    const member = h.backend("solo");
    if (reply?.status === 400) {
      t.regex(header(reply, "content-type") ?? "", /^application\/json/, client.preview);
      t.is(typeof json(reply).error, "string");
      const { reply: after } = await send(h, "/after");
      t.is(after?.status, 200);
      t.deepEqual(
        member.requests.map((r) => r.url),
        ["/api/after"],
        "the refused request reached no member",
      );
      return;
    }
    t.is(reply?.status, 200, client.preview);
    const [seen] = member.requests;
    const url = seen?.url ?? "";
    t.true(url === "/api" || url.startsWith("/api/"), url);
    const resolved = resolvedPath(url);
    t.true(resolved === "/api" || resolved.startsWith("/api/"), `${url} resolves to ${resolved}`);
    t.is(url, posix.normalize(url), `${url} has no dot-segments left`);
  });
}

test("an ordinary path and query arrive under the prefix byte for byte", async (t) => {
  const h = await proxy(t);
  const { reply } = await send(h, "/users/a%20b/%E2%9C%93?x=1&y=%2F");
  t.is(reply?.status, 200);
  t.deepEqual(
    h.backend("solo").requests.map((r) => r.url),
    ["/api/users/a%20b/%E2%9C%93?x=1&y=%2F"],
  );
});

test("dot-segments inside the path are removed before the prefix is applied", async (t) => {
  const h = await proxy(t);
  const { reply } = await send(h, "/a/./b/../c?q=/../x");
  t.is(reply?.status, 200);
  t.deepEqual(
    h.backend("solo").requests.map((r) => r.url),
    ["/api/a/c?q=/../x"],
  );
});

/**
 * One path, one key: the key is read from the target the member receives,
 * so `/x/../users/k` is routed exactly like `/users/k`. The owner is worked
 * out here from the path as a member resolves it (posix.normalize), not by
 * the proxy's own code.
 */
test("a target spelt with dot-segments goes to the owner of the path the member receives", async (t) => {
  const names = ["a", "b", "c"];
  const h = await startRawProxy(names);
  t.teardown(() => h.close());
  const ring = h.cluster.routing.ring;
  const spellings = (k: number) => [`/users/${k}`, `/x/../users/${k}`, `/users/./${k}`, `/users/x/%2e%2e/${k}?q=1`];
  const expected: string[] = [];
  for (let k = 0; k < 40; k++) {
    for (const target of spellings(k)) {
      const client = await h.connect();
      await client.send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const [reply] = await client.waitForResponses(1, [], 10_000);
      t.is(reply?.status, 200, client.preview);
      const path = resolvedPath(target);
      const owner = ring.ownersOf(path)[0];
      expected.push(`${owner} ${path}${target.includes("?") ? "?q=1" : ""}`);
      // `ringroute lookup --target` names the same owner.
      t.like(lookupTarget(target, defaultConfig().key, ring), { key: path, owners: ring.ownersOf(path) });
    }
  }
  const received = h.backends.flatMap((b) => b.requests.map((r) => `${b.name} ${r.url}`));
  t.deepEqual(received.sort(), expected.sort());
  // Every resource is served by one member only.
  const servedBy = new Map<string, Set<string>>();
  for (const line of received) {
    const [member, url] = line.split(" ") as [string, string];
    const path = url.split("?")[0] as string;
    servedBy.set(path, (servedBy.get(path) ?? new Set()).add(member));
  }
  t.is(servedBy.size, 40);
  t.true([...servedBy.values()].every((members) => members.size === 1));
});

test("regex: keys are matched against the normalised path", async (t) => {
  const names = ["a", "b", "c"];
  const h = await startRawProxy(names, { key: { from: { kind: "regex", pattern: "^/tenants/([^/]+)" } } });
  t.teardown(() => h.close());
  const ring = h.cluster.routing.ring;
  const tenants = Array.from({ length: 20 }, (_, i) => `t${i}`);
  for (const tenant of tenants) {
    for (const target of [`/tenants/${tenant}/a`, `/other/../tenants/${tenant}/b`]) {
      const client = await h.connect();
      await client.send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const [reply] = await client.waitForResponses(1, [], 10_000);
      t.is(reply?.status, 200, client.preview);
    }
  }
  for (const tenant of tenants) {
    const owner = ring.ownersOf(tenant)[0] as string;
    t.deepEqual(
      h.backends.flatMap((b) => b.requests.filter((r) => r.url.startsWith(`/tenants/${tenant}/`)).map(() => b.name)),
      [owner, owner],
      tenant,
    );
  }
  // `/other/../tenants/x` under the old rule had no key (the raw path does not match): now it has one.
  t.is(h.backends.flatMap((b) => b.requests).length, 40);
});
