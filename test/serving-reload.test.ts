import test from "ava";
import { type Config, defaultConfig } from "../src/config.ts";
import { planReload } from "../src/serving/reload.ts";

const membershipOf = (c: Config) => c.membership;
const base = (): Config => ({
  ...defaultConfig(),
  membership: { static: { members: [{ name: "a", url: "http://a.test" }] } },
});

test("the same config again applies nothing and restarts nothing", (t) => {
  const plan = planReload(base(), base(), membershipOf);
  t.deepEqual([plan.applied, plan.restart], [[], []]);
  t.deepEqual(plan.running, base());
});

test("listen, admin, workers, readiness and log.format wait for a restart and keep their running values", (t) => {
  const current = base();
  const next: Config = {
    ...base(),
    listen: { host: "127.0.0.1", port: 1 },
    admin: { host: "127.0.0.1", port: 2 },
    workers: 4,
    readiness: { sourceDown: "unready" },
    log: { level: "debug", format: "pretty" },
  };
  const plan = planReload(current, next, membershipOf);
  t.deepEqual(plan.restart, ["listen", "admin", "workers", "readiness", "log.format"]);
  t.deepEqual(plan.applied, ["log.level"]);
  t.deepEqual(plan.running.listen, current.listen);
  t.is(plan.running.workers, current.workers);
  t.deepEqual(plan.running.log, { level: "debug", format: current.log.format });
});

test("key, proxy, access, ring, membership and shutdown apply live; each named once", (t) => {
  const next = base();
  next.key = { ...next.key, from: { kind: "header", name: "x-user" } };
  next.access = { log: false, sample: 1 };
  next.ring = { ...next.ring, partitions: 1024 };
  next.membership = { static: { members: [{ name: "b", url: "http://b.test" }] } };
  next.shutdownDelay = 3000;
  const plan = planReload(base(), next, membershipOf);
  t.deepEqual(plan.applied, ["key", "proxy", "access", "ring", "membership", "shutdown"]);
  t.true(plan.listener && plan.access && plan.ring && plan.membership);
  t.false(plan.logLevel || plan.tls);
  t.is(plan.running.ring.partitions, 1024);
});

test("http2 applies live, to connections accepted from now on: the listener's part of a reload", (t) => {
  const next = { ...base(), http2: false };
  const plan = planReload(base(), next, membershipOf);
  t.deepEqual([plan.applied, plan.restart], [["http2"], []]);
  t.true(plan.listener);
  t.false(plan.running.http2);
});

test("TLS files are read again on every reload while TLS stays on; turning it on or off waits for a restart", (t) => {
  const tls = { cert: "c.pem", key: "k.pem" };
  const on = { ...base(), tls };
  t.deepEqual(planReload(on, on, membershipOf).applied, ["tls"], "same paths, renewed files");
  const off = planReload(base(), on, membershipOf);
  t.deepEqual([off.applied, off.restart], [[], ["tls"]]);
  t.is(off.running.tls, undefined, "still plain HTTP until the restart");
  const down = planReload(on, base(), membershipOf);
  t.deepEqual(down.restart, ["tls"]);
  t.deepEqual(down.running.tls, tls);
});
