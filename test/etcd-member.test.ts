import { once } from "node:events";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { Nodes } from "./helpers/etcd-nodes.ts";
import { until } from "./helpers/until.ts";

let etcd: EtcdServer;
test.before(async () => {
  etcd = await EtcdServer.start();
});
test.after.always(() => etcd?.stop());

let count = 0;
const ring = { partitions: 32, replicas: 2 };
function nodes(t: { teardown(fn: () => Promise<void>): void }): Nodes {
  const n = new Nodes(etcd, `m${++count}`, ring);
  t.teardown(() => n.stopAll());
  return n;
}

async function modRevision(key: string): Promise<number> {
  const out = JSON.parse(await etcd.ctl("get", key, "-w", "json")) as { kvs?: { mod_revision: number }[] };
  return out.kvs?.[0]?.mod_revision ?? 0;
}

test("join registers the member under a lease, setReady(false) drains it, leave revokes the lease", async (t) => {
  const n = nodes(t);
  const a = await n.member("a");
  const b = await n.member("b");
  await until(() => a.cluster.stableVersion !== undefined && a.cluster.ring.size === 2, {
    what: "a stable version of a and b",
  });
  const value = JSON.parse(
    await until(() => etcd.ctl("get", "--print-value-only", `${n.prefix}members/b`), { what: "b's key" }),
  );
  t.deepEqual(value, { url: "http://127.0.0.1:1/b", tags: {}, ready: true, protocol: "h1" });
  const leases = await etcd.ctl("get", `${n.prefix}members/b`, "-w", "json");
  t.not(JSON.parse(leases).kvs[0].lease, undefined, "the member key is attached to a lease");

  await b.member.setReady(false);
  await until(() => !a.cluster.has("b") && a.cluster.consistent, { what: "b drained out of a's ring" });
  t.is(a.cluster.member("b")?.state, "failed", "b is still registered, just not in the ring");

  await b.member.leave();
  await until(() => a.cluster.member("b") === undefined, { what: "b gone after leave" });
  t.is(await etcd.ctl("get", "--prefix", "--keys-only", `${n.prefix}members/b`), "");
});

test("the first member leads; versions follow membership; a version is stable only after every member reports it", async (t) => {
  const n = nodes(t);
  const a = await n.member("a");
  await until(() => a.member.isLeader(), { what: "a leading" });
  const b = await n.member("b");
  t.false(b.member.isLeader());
  await until(() => b.cluster.stableVersion === b.cluster.version && b.cluster.ring.size === 2, {
    what: "a, b stable",
  });

  // A member written in another language: it registers with etcdctl and
  // reports its hand-offs by hand.
  const lease = await etcd.grant(30);
  await etcd.ctl(
    "put",
    "--lease",
    lease,
    `${n.prefix}members/go-1`,
    JSON.stringify({ url: "http://10.0.0.9:80", tags: {}, ready: true }),
  );
  const version = await until(() => (a.cluster.has("go-1") ? a.cluster.version : undefined), {
    what: "a version with go-1",
  });
  await until(() => a.source.view.ready.get("a") === version && a.source.view.ready.get("b") === version, {
    what: "a and b reporting the version",
  });
  t.not(a.cluster.stableVersion, version);
  t.false(a.cluster.consistent);

  // go-1 lets go of nothing and is ready for what it owns.
  const owned = Ring.build(["a", "b", "go-1"], ring);
  const ready: Record<string, number[]> = {};
  for (let p = 0; p < ring.partitions; p++) {
    owned.ownersOfPartition(p).forEach((m, r) => {
      if (m === "go-1") ready[String(r)] = [...(ready[String(r)] ?? []), p];
    });
  }
  await etcd.ctl("put", "--lease", lease, `${n.prefix}handoff/go-1`, JSON.stringify({ version, ready, released: {} }));
  await etcd.ctl("put", "--lease", lease, `${n.prefix}ready/go-1`, String(version));
  await until(() => a.cluster.stableVersion === version && b.cluster.stableVersion === version, { what: "stable" });
  t.true(a.cluster.consistent);
  t.true(
    (await modRevision(`${n.prefix}stable`)) > (await modRevision(`${n.prefix}ready/go-1`)),
    "stable was written after go-1's report",
  );
  t.is(
    a.cluster.ring.checksum,
    a.source.latestVersion()?.checksum ?? "none",
    "the Cluster's ring is the version's ring",
  );
});

test.serial("a SIGKILLed sidecar leaves the ring within TTL + 2 s; its leadership passes within a TTL", async (t) => {
  t.timeout(240_000, "starting two sidecar processes on a loaded machine");
  const n = nodes(t);
  const first = n.sidecar("side-1", "http://127.0.0.1:1");
  const registered = async (name: string) =>
    (await etcd.ctl("get", "--keys-only", `${n.prefix}election/${name}`)) !== "";
  await until(() => registered("side-1"), { what: "side-1 registered", interval: 100, timeout: 120_000 });
  n.sidecar("side-2", "http://127.0.0.1:2");
  await until(() => registered("side-2"), { what: "side-2 registered", interval: 100, timeout: 120_000 });
  const observer = await n.member("observer", { ready: false });
  await until(() => observer.member.leader === "side-1", { what: "side-1 leading" });
  await until(() => observer.cluster.has("side-1") && observer.cluster.has("side-2"), {
    what: "both sidecars in the ring",
  });
  const leaderChanged = once(observer.member, "leader");

  const exited = once(first, "exit");
  first.kill("SIGKILL");
  await exited;
  const killedAt = performance.now();
  await until(() => observer.source.view.members.get("side-1") === undefined, { what: "side-1's key expired" });
  const expired = performance.now() - killedAt;
  await leaderChanged;
  const failover = performance.now() - killedAt;
  t.is(observer.member.leader, "side-2");
  await until(() => !observer.cluster.has("side-1"), { what: "side-1 out of the ring" });
  const outOfRing = performance.now() - killedAt;
  t.log(
    `SIGKILL → key expired ${expired.toFixed(0)} ms, new leader ${failover.toFixed(0)} ms, out of the ring ${outOfRing.toFixed(0)} ms (TTL 2 s)`,
  );
  t.true(expired <= 4000, `lease expiry took ${expired} ms`);
  t.true(failover <= 4000, `failover took ${failover} ms`);
});

test.serial("the sidecar marks its backend not ready while the health check fails and leaves on SIGTERM", async (t) => {
  t.timeout(240_000, "starting a sidecar process on a loaded machine");
  const { createServer } = await import("node:http");
  let healthy = true;
  const server = createServer((req, res) => {
    res.writeHead(req.url === "/healthz" && healthy ? 200 : 503).end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const n = nodes(t);
  const observer = await n.member("observer", { ready: false });
  const child = n.sidecar("web-1", url, ["--health-path=/healthz", "--health-interval=200ms", "--health-timeout=5s"]);
  await until(() => observer.cluster.has("web-1"), { what: "web-1 ready in the ring", timeout: 120_000 });
  healthy = false;
  await until(() => !observer.cluster.has("web-1") && observer.cluster.member("web-1")?.state === "failed", {
    what: "web-1 drained while unhealthy",
  });
  healthy = true;
  await until(() => observer.cluster.has("web-1"), { what: "web-1 back when healthy" });
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const [code] = await exited;
  t.is(code, 0);
  t.is(await etcd.ctl("get", "--prefix", "--keys-only", `${n.prefix}members/web-1`), "", "leaving revoked the lease");
});

test.serial("ringroute member: -h prints its usage; a bad or missing flag exits 2 naming it", async (t) => {
  t.timeout(240_000, "eight CLI processes on a loaded machine");
  const { ringroute } = await import("./helpers/cli.ts");
  const help = await ringroute(["member", "-h"]);
  t.is(help.code, 0);
  t.regex(help.stdout, /ringroute member --etcd URLS --name NAME --url URL/);
  const cases: [string[], string][] = [
    [["--name=a", "--url=http://x"], "--etcd"],
    [["--etcd=http://127.0.0.1:1", "--url=http://x"], "--name"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=x"], "--url"],
    [["--etcd=127.0.0.1:1", "--name=a", "--url=http://x"], "--etcd"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--ttl=5"], "--ttl"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--health-path=healthz"], "--health-path"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--bogus"], "--bogus"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--release-hook=ftp://x"], "--release-hook"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--acquire-hook=/acquire"], "--acquire-hook"],
    [["--etcd=http://127.0.0.1:1", "--name=a", "--url=http://x", "--leave-timeout=30"], "--leave-timeout"],
  ];
  const runs = await Promise.all(cases.map(([args]) => ringroute(["member", ...args])));
  for (const [i, [args, flag]] of cases.entries()) {
    const run = runs[i] as Awaited<ReturnType<typeof ringroute>>;
    t.is(run.code, 2, args.join(" "));
    t.regex(run.stderr, new RegExp(`^ringroute: ${flag}: `), args.join(" "));
    t.is(run.stderr.trim().split("\n").length, 1);
  }
});

test.serial("ringroute member logs like serve: JSON lines with an ISO time and the level by name", async (t) => {
  const { spawn } = await import("node:child_process");
  const cli = new URL("../src/cli.ts", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      cli,
      "member",
      `--etcd=${etcd.endpoint}`,
      `--cluster=logs${++count}`,
      "--name=web-0",
      "--url=http://127.0.0.1:1",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RINGROUTE_LOG_FORMAT: "json" } },
  );
  const exited = once(child, "exit");
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const line = await until(() => stderr.split("\n").find((l) => l.includes('"registered"')), {
    what: "ringroute member's registered line",
    timeout: 120_000,
  });
  const record = JSON.parse(line);
  t.is(record.level, "info");
  t.regex(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.is(record.command, "member");
  t.is(record.name, "web-0");
  child.kill("SIGTERM");
  const [code] = await exited;
  t.is(code, 0);
});
