/**
 * What a user of a partitioned proxy expects when one backend dies, on real
 * sockets through the proxy with the default placement: static members with
 * health checks, one killed. Which member holds which partition is read from
 * the requests the members actually receive, one key a partition.
 *
 * - the dead member's partitions spread over the others, none above the cap
 *   the balance factor sets;
 * - the partitions of live members stay where they were, but for at most
 *   1 % of P;
 * - when it comes back, every partition returns to where it was.
 */
import type { AddressInfo } from "node:net";
import test from "ava";
import { parse as parseYaml } from "yaml";
import { type Serving, startServing } from "../src/commands/serve.ts";
import { parseConfig } from "../src/config.ts";
import { Ring } from "../src/ring/ring.ts";
import { type Backend, send, startBackends } from "./helpers/backends.ts";
import { until } from "./helpers/until.ts";

const P = 512;

/** One key for each partition: the first `/k/i` that hashes into it. */
function keyPerPartition(partitions: number): string[] {
  const partitionOf = Ring.build([], { partitions });
  const keys: (string | undefined)[] = new Array(partitions).fill(undefined);
  let found = 0;
  for (let i = 0; found < partitions; i++) {
    const key = `/k/${i}`;
    const p = partitionOf.partitionOf(key);
    if (keys[p] === undefined) {
      keys[p] = key;
      found++;
    }
  }
  return keys as string[];
}

/** Sends every key through the proxy; returns, for each, the member that received it. */
async function receivers(proxy: string, backends: Backend[], keys: string[]): Promise<string[]> {
  for (const b of backends) b.seen.length = 0;
  for (let i = 0; i < keys.length; i += 32) {
    const replies = await Promise.all(keys.slice(i, i + 32).map((key) => send(proxy, key)));
    for (const [j, reply] of replies.entries()) {
      if (reply.status !== 200) throw new Error(`${keys[i + j]}: status ${reply.status}`);
    }
  }
  const by = new Map<string, string>();
  for (const b of backends) for (const s of b.seen) if (s.url.startsWith("/k/")) by.set(s.url, b.name);
  return keys.map((key) => by.get(key) ?? "none");
}

/** Brings a killed backend back on its old port. */
function revive(backend: Backend): Promise<void> {
  const port = Number(new URL(backend.url).port);
  return new Promise((resolve, reject) => {
    backend.server.once("error", reject);
    backend.server.listen(port, "127.0.0.1", () => {
      backend.server.off("error", reject);
      if ((backend.server.address() as AddressInfo).port !== port) reject(new Error("port changed"));
      else resolve();
    });
  });
}

async function killOne(t: import("ava").ExecutionContext, n: number, victims: (names: string[]) => string[]) {
  const names = Array.from({ length: n }, (_, i) => `cache-${String(i).padStart(2, "0")}`);
  const backends = await startBackends(names);
  t.teardown(() => Promise.all(backends.map((b) => (b.server.listening ? b.kill() : undefined))));
  const members = backends.map((b) => `      - { name: ${b.name}, url: "${b.url}" }`).join("\n");
  const yaml =
    `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\naccess: { log: false }\nring: { partitions: ${P} }\n` +
    `membership:\n  static:\n    members:\n${members}\n` +
    "  health: { path: /healthz, interval: 100ms, timeout: 1s, rise: 1, fall: 1, reconnectInterval: 200ms }\n";
  const config = parseConfig(parseYaml(yaml));
  t.is(config.ring.placement, "balanced", "the default placement");
  const serving: Serving = await startServing(config);
  t.teardown(() => serving.close());
  const proxy = `http://127.0.0.1:${serving.proxy.port}`;
  const keys = keyPerPartition(P);
  const inRing = (name: string, wanted: boolean) =>
    until(() => serving.cluster.ring.has(name) === wanted && serving.cluster.ring.size === (wanted ? n : n - 1), {
      what: `${name} ${wanted ? "back in" : "out of"} the ring`,
    });
  await until(() => serving.cluster.ring.size === n, { what: `all ${n} members in the ring` });
  const initial = await receivers(proxy, backends, keys);
  t.deepEqual([...new Set(initial)].sort(), names, "every member receives keys");

  // The most primaries a member may hold among n − 1: the balance factor's cap.
  const cap = Math.max(Math.ceil(P / (n - 1)), Math.floor((1.25 * P) / (n - 1)));
  for (const victim of victims(names)) {
    const backend = backends.find((b) => b.name === victim) as Backend;
    await backend.kill();
    await inRing(victim, false);
    const after = await receivers(proxy, backends, keys);

    const liveMoved = initial.filter((owner, p) => owner !== victim && after[p] !== owner).length;
    t.true(liveMoved <= P / 100, `${victim} of ${n} killed: ${liveMoved} partitions of live members moved`);
    const orphans = initial.flatMap((owner, p) => (owner === victim ? [after[p] as string] : []));
    t.false(orphans.includes(victim), "no key reaches the dead member");
    if (n > 2) t.true(new Set(orphans).size > 1, `${victim}'s partitions go to more than one member`);
    const held = new Map<string, number>();
    for (const owner of after) held.set(owner, (held.get(owner) ?? 0) + 1);
    for (const [member, count] of held) {
      t.true(count <= cap, `${member} holds ${count} partitions, cap ${cap} with ${n - 1} members`);
    }

    await revive(backend);
    await inRing(victim, true);
    t.deepEqual(await receivers(proxy, backends, keys), initial, `${victim} back: every partition where it was`);
  }
}

test("3 members with health checks, each killed in turn: its partitions spread within the cap and return", (t) =>
  killOne(t, 3, (names) => names));

test("5 members with health checks, each killed in turn: live members keep their partitions", (t) =>
  killOne(t, 5, (names) => names));

test("20 members with health checks, the first, two middle and the last killed in turn", (t) =>
  killOne(t, 20, (names) => [names[0], names[7], names[12], names[19]] as string[]));
