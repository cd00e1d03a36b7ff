import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { EtcdSource } from "../src/membership/etcd/source.ts";
import { createSource } from "../src/membership/index.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { until } from "./helpers/until.ts";

let etcd: EtcdServer;
test.before(async () => {
  etcd = await EtcdServer.start();
});
test.after.always(() => etcd?.stop());

let clusters = 0;
/** A fresh prefix per test, so tests sharing one etcd never see each other's keys. */
const fresh = () => `t${++clusters}`;

const member = (url: string, ready = true, tags: Record<string, string> = {}) => JSON.stringify({ url, tags, ready });

function immediateCluster(name: string, tags: Record<string, string> = {}) {
  const source = new EtcdSource({ endpoints: [etcd.endpoint], cluster: name, handoff: "immediate", tags });
  return new Cluster({ source, ring: { partitions: 64, replicas: 2 } });
}

test("the config takes endpoints, cluster, prefix, auth, TLS, timeouts and hand-off mode, naming bad fields", (t) => {
  const config = parseMembershipConfig({
    etcd: { endpoints: "http://127.0.0.1:2379,http://10.0.0.2:2379", cluster: "web" },
  });
  t.deepEqual(config.etcd?.endpoints, ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
  t.is(config.etcd?.prefix, "/ringroute/web/");
  t.is(config.etcd?.handoff, "coordinated");
  t.is(config.etcd?.handoffTimeout, 30_000);
  const full = parseMembershipConfig({
    etcd: {
      endpoints: ["https://e:2379"],
      prefix: "/x/",
      tls: { ca: "ca.pem", cert: "c.pem", key: "k.pem" },
      username: "u",
      password: "p",
      dialTimeout: "2s",
      handoff: "immediate",
      handoffTimeout: "5s",
      tags: { ring: "^on$" },
    },
  }).etcd;
  t.like(full, { prefix: "/x/", dialTimeout: 2000, handoff: "immediate", handoffTimeout: 5000, username: "u" });
  const bad: [unknown, string][] = [
    [{ endpoints: [] }, "membership.etcd.endpoints"],
    [{ endpoints: ["127.0.0.1:2379"] }, "membership.etcd.endpoints"],
    [{ prefix: "ringroute" }, "membership.etcd.prefix"],
    [{ handoff: "eventually" }, "membership.etcd.handoff"],
    [{ dialTimeout: 5 }, "membership.etcd.dialTimeout"],
    [{ username: "u" }, "membership.etcd.password"],
    [{ tls: { cert: "c.pem" } }, "membership.etcd.tls"],
    [{ tags: { ring: "(" } }, "membership.etcd.tags.ring"],
    [{ endpoint: "x" }, "membership.etcd.endpoint"],
  ];
  for (const [etcdSection, field] of bad) {
    const error = t.throws(() => parseMembershipConfig({ etcd: etcdSection }));
    t.true(error?.message.startsWith(`${field}:`), `${JSON.stringify(etcdSection)} → ${error?.message}`);
  }
  t.is(createSource(parseMembershipConfig({ etcd: {} })).kind, "etcd");
});

test("a member registered with etcdctl under a lease is in the ring while ready and leaves when its lease expires", async (t) => {
  const name = fresh();
  const cluster = immediateCluster(name);
  t.teardown(() => cluster.stop());
  await cluster.start();
  await until(() => cluster.synced, { what: "first etcd snapshot" });
  t.is(cluster.size, 0);

  const lease = await etcd.grant(6); // long enough for a slow etcdctl start on a loaded machine
  await etcd.ctl("put", "--lease", lease, `/ringroute/${name}/members/go-1`, member("http://10.0.0.1:8080"));
  await etcd.ctl("put", `/ringroute/${name}/members/py-1`, member("http://10.0.0.2:8080"));
  await until(() => cluster.size === 2, { what: "go-1 and py-1 in the ring" });
  t.is(cluster.member("go-1")?.url, "http://10.0.0.1:8080");

  await etcd.ctl("put", `/ringroute/${name}/members/py-1`, member("http://10.0.0.2:8080", false));
  await until(() => !cluster.has("py-1"), { what: "py-1 drained by ready: false" });
  t.is(cluster.member("py-1")?.state, "failed");

  // Nobody keeps go-1's lease alive: etcd deletes the key when it expires.
  await until(() => !cluster.has("go-1") && cluster.member("go-1") === undefined, { what: "go-1 gone with its lease" });
});

test("tags filter members as for Serf, and a value that is not the contract's JSON is left out", async (t) => {
  const name = fresh();
  const cluster = immediateCluster(name, { ring: "^active$" });
  t.teardown(() => cluster.stop());
  await cluster.start();
  await etcd.ctl("put", `/ringroute/${name}/members/a`, member("http://10.0.0.1:1", true, { ring: "active" }));
  await etcd.ctl("put", `/ringroute/${name}/members/b`, member("http://10.0.0.2:1", true, { ring: "drain" }));
  await etcd.ctl("put", `/ringroute/${name}/members/c`, "not json");
  await etcd.ctl("put", `/ringroute/${name}/members/d`, member("http://10.0.0.4:1"));
  await until(() => cluster.has("a"), { what: "a in the ring" });
  // d was written last: once it is known, every earlier key was seen too.
  await until(() => cluster.knownMembers().length === 1, { what: "the view after all four writes" });
  t.deepEqual(cluster.ring.members, ["a"]);
});

test("etcd SIGKILLed: the ring is kept and the source reports down; restarted: the watch resumes", async (t) => {
  // Its own etcd: the other tests keep theirs running.
  const etcd = await EtcdServer.start();
  t.teardown(() => etcd.stop());
  const name = fresh();
  const source = new EtcdSource({ endpoints: [etcd.endpoint], cluster: name, handoff: "immediate" });
  const cluster = new Cluster({ source });
  const sources: string[] = [];
  cluster.listen({ source: (up) => sources.push(up ? "up" : "down") });
  t.teardown(() => cluster.stop());
  await cluster.start();
  await etcd.ctl("put", `/ringroute/${name}/members/a`, member("http://10.0.0.1:1"));
  await until(() => cluster.has("a"), { what: "a in the ring" });
  const checksum = cluster.ring.checksum;

  await etcd.kill();
  await until(() => !cluster.sourceUp, { what: "the source reporting etcd down" });
  t.is(cluster.ring.checksum, checksum, "the last good ring stands");

  await etcd.restart();
  await until(() => cluster.sourceUp, { what: "the source back up" });
  await etcd.ctl("put", `/ringroute/${name}/members/b`, member("http://10.0.0.2:1"));
  await until(() => cluster.has("b"), { what: "b, written after the restart, in the ring" });
  t.true(cluster.has("a"));
  t.deepEqual(sources, ["up", "down", "up"]);
});
