/**
 * Figures for the README's etcd section, on a real etcd on loopback:
 * join → first routed request, SIGKILL → out of the ring, leader failover,
 * and what a coordinated hand-off adds when release and acquire take no time.
 * Medians over ROUNDS rounds. Needs `npm run build` (the sidecar runs dist/).
 * Then a rolling restart of examples/etcd-cache behind proxies under steady
 * reads and writes (bench/etcd-rolling.ts).
 *
 *   npx tsx bench/etcd.ts [--rounds 5] [--skip basic|rolling]
 *     [--instances 5] [--proxies 3] [--keys 10000] [--workers 8] [--write-share 0.2] [--pause 2000]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import { EtcdMember } from "../src/membership/etcd/member.ts";
import { EtcdSource } from "../src/membership/etcd/source.ts";
import { createProxy } from "../src/proxy/server.ts";
import { Ring } from "../src/ring/ring.ts";
import { EtcdServer } from "../test/helpers/etcd.ts";
import { until } from "../test/helpers/until.ts";
import { rollingRestart } from "./etcd-rolling.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    skip: { type: "string", default: "" },
    instances: { type: "string", default: "5" },
    proxies: { type: "string", default: "3" },
    keys: { type: "string", default: "10000" },
    workers: { type: "string", default: "8" },
    "write-share": { type: "string", default: "0.2" },
    pause: { type: "string", default: "2000" },
  },
});
const rounds = values.skip === "basic" ? 0 : Number(values.rounds);
const ring = { partitions: 64, replicas: 1 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const etcd = await EtcdServer.start();
let clusterCount = 0;

async function member(cluster: string, name: string, url: string, ttl = 5000) {
  const source = new EtcdSource({ endpoints: [etcd.endpoint], cluster });
  const c = new Cluster({ source, local: name, ring });
  const m = new EtcdMember(source, { name, url, ttl, ring, handoff: { release() {}, acquire() {} } });
  await c.start();
  return { source, cluster: c, member: m };
}

/** Join → first request routed to the new member, through a proxy. */
async function joinToFirstRequest(): Promise<number> {
  const name = `bench${++clusterCount}`;
  let firstAtB = 0;
  const servers = await Promise.all(
    ["a", "b"].map(
      (who) =>
        new Promise<{ url: string; close(): void }>((resolve) => {
          const server = createServer((_req, res) => {
            if (who === "b" && firstAtB === 0) firstAtB = performance.now();
            res.end(who);
          });
          server.listen(0, "127.0.0.1", () =>
            resolve({
              url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
              close: () => server.close(),
            }),
          );
        }),
    ),
  );
  const a = await member(name, "a", servers[0]?.url as string);
  await a.member.join();
  const observer = new Cluster({ source: new EtcdSource({ endpoints: [etcd.endpoint], cluster: name }), ring });
  await observer.start();
  const config = defaultConfig();
  const proxy = createProxy({ cluster: observer, config: { key: config.key, proxy: config.proxy } });
  const { port } = await proxy.listen(0, "127.0.0.1");
  await until(() => observer.routing.has("a"), { what: "routing to a" });
  const target = Ring.build(["a", "b"], ring);
  let key = "/k0";
  for (let i = 0; target.ownerOf(key) !== "b"; i++) key = `/k${i}`;
  let sending = true;
  const traffic = (async () => {
    while (sending) await fetch(`http://127.0.0.1:${port}${key}`).then((r) => r.arrayBuffer());
  })();
  const b = await member(name, "b", servers[1]?.url as string);
  const joinedAt = performance.now();
  await b.member.join();
  await until(() => firstAtB !== 0, { what: "a request at b" });
  sending = false;
  await traffic;
  await proxy.close(100);
  await Promise.all([a.member.leave(), b.member.leave()]);
  await Promise.all([a.cluster.stop(), b.cluster.stop(), observer.stop()]);
  for (const s of servers) s.close();
  return firstAtB - joinedAt;
}

/** Hand-off duration as the proxy sees it (version seen → new owner ready), release and acquire instant. */
async function handoffOverhead(): Promise<number> {
  const name = `bench${++clusterCount}`;
  const a = await member(name, "a", "http://127.0.0.1:1");
  await a.member.join();
  const observer = new Cluster({ source: new EtcdSource({ endpoints: [etcd.endpoint], cluster: name }), ring });
  const durations: number[] = [];
  await observer.start();
  (observer.coordination as { onHandoff?: (s: number) => void }).onHandoff = (s) => durations.push(s * 1000);
  await until(() => observer.stableVersion !== undefined && observer.has("a"), { what: "a stable" });
  const b = await member(name, "b", "http://127.0.0.1:2");
  await b.member.join();
  await until(
    () => observer.ring.size === 2 && observer.coordination?.partitionsInHandoff === 0 && durations.length > 0,
    {
      what: "hand-off done",
    },
  );
  await Promise.all([a.member.leave(), b.member.leave()]);
  await Promise.all([a.cluster.stop(), b.cluster.stop(), observer.stop()]);
  return Math.max(...durations);
}

/** SIGKILL of a sidecar (TTL 2 s): until its key expires, until it leaves the ring, until the next leader. */
async function killFigures(): Promise<{ out: number; leader: number }> {
  const name = `bench${++clusterCount}`;
  const cli = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
  const sidecar = (who: string): ChildProcess =>
    spawn(
      process.execPath,
      [
        cli,
        "member",
        `--etcd=${etcd.endpoint}`,
        `--cluster=${name}`,
        `--name=${who}`,
        "--url=http://127.0.0.1:1",
        "--ttl=2s",
        "--partitions=64",
        "--replicas=1",
      ],
      { stdio: "ignore" },
    );
  const prefix = `/ringroute/${name}/`;
  const registered = async (who: string) => (await etcd.ctl("get", "--keys-only", `${prefix}election/${who}`)) !== "";
  const first = sidecar("s1");
  await until(() => registered("s1"), { what: "s1", timeout: 60_000, interval: 50 });
  const second = sidecar("s2");
  await until(() => registered("s2"), { what: "s2", timeout: 60_000, interval: 50 });
  const watcher = await member(name, "watcher", "http://127.0.0.1:3");
  await watcher.member.join();
  await watcher.member.setReady(false);
  await until(() => watcher.cluster.has("s1") && watcher.member.leader === "s1", { what: "s1 in and leading" });
  const killedAt = performance.now();
  first.kill("SIGKILL");
  await until(() => watcher.member.leader === "s2", { what: "s2 leading", interval: 5 });
  const leader = performance.now() - killedAt;
  await until(() => !watcher.cluster.has("s1"), { what: "s1 out", interval: 5 });
  const out = performance.now() - killedAt;
  second.kill("SIGTERM");
  await once(second, "exit");
  await watcher.member.leave();
  await watcher.cluster.stop();
  return { out, leader };
}

const joins: number[] = [];
const handoffs: number[] = [];
const outs: number[] = [];
const leaders: number[] = [];
for (let i = 0; i < rounds; i++) {
  joins.push(await joinToFirstRequest());
  handoffs.push(await handoffOverhead());
  const k = await killFigures();
  outs.push(k.out);
  leaders.push(k.leader);
}
const rolling =
  values.skip === "rolling"
    ? undefined
    : await rollingRestart(etcd, {
        instances: Number(values.instances),
        proxies: Number(values.proxies),
        keys: Number(values.keys),
        workers: Number(values.workers),
        writeShare: Number(values["write-share"]),
        pause: Number(values.pause),
      });
await etcd.stop();
const show = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(", ")})`;
if (rounds > 0) {
  console.log(`join → first routed request: ${show(joins)}`);
  console.log(`hand-off with instant release/acquire, slowest slot: ${show(handoffs)}`);
  console.log(`SIGKILL → out of the ring (TTL 2 s): ${show(outs)}`);
  console.log(`SIGKILL → new leader (TTL 2 s): ${show(leaders)}`);
}
if (rolling) {
  const r = rolling;
  console.log(
    `rolling restart (${values.instances} instances, ${values.proxies} proxies, ${values.keys} keys, ${r.seconds.toFixed(0)} s; per instance ${r.restartSeconds.map((x) => x.toFixed(1)).join(", ")} s):`,
  );
  console.log(`  writes acknowledged ${r.writesAcked}, lost ${r.writesLost}`);
  console.log(`  reads ${r.reads}: stale ${r.staleReads}, missing ${r.missingReads}`);
  console.log(`  requests that met 421: ${r.met421}, 503: ${r.met503}, other errors: ${r.otherErrors}`);
  console.log(
    `  reads answered from an owner's memory, worst second: ${(r.worstSecondMemoryShare * 100).toFixed(1)} % (with the old owner's saved copy: ${(r.worstSecondInMemoryShare * 100).toFixed(1)} %)`,
  );
}
process.exit(0);
