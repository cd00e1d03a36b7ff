import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { HealthCheckedSource, type HealthProbe, httpProbe } from "../src/membership/health.ts";
import {
  firstHealth,
  type HealthEvent,
  type HealthRules,
  type HealthState,
  nextHealth,
} from "../src/membership/health-state.ts";
import { createSource } from "../src/membership/index.ts";
import { StaticSource } from "../src/membership/static.ts";
import { flush, ManualClock } from "./helpers/clock.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { TestSource } from "./helpers/source.ts";
import { until, within } from "./helpers/until.ts";

// ---------------------------------------------------------------------------
// The rules, table by table: (state, event, now) → (state, actions).

const rules: HealthRules = { interval: 2000, rise: 2, fall: 3, reconnectInterval: 10_000 };
const pass: HealthEvent = { type: "pass" };
const fail: HealthEvent = { type: "fail", error: "ECONNREFUSED" };
const due: HealthEvent = { type: "due" };

/** Runs events from a member's first check; returns a line per step: status, counts, actions. */
function run(events: HealthEvent[], r: HealthRules = rules): string[] {
  let { state } = firstHealth(0);
  return events.map((event, i) => {
    const step = nextHealth(state, event, (i + 1) * 10, r);
    state = step.state;
    const actions = step.actions.map((a) =>
      a.type === "schedule" ? `schedule ${a.delay}` : a.type === "log" ? `log ${a.level}` : a.type,
    );
    return `${event.type}: ${state.status} +${state.passes} -${state.failures} [${actions.join(", ")}]`;
  });
}

test("rules: a new member is pending and checked at once", (t) => {
  const { state, actions } = firstHealth(123);
  t.deepEqual(state, { status: "pending", passes: 0, failures: 0, since: 123, checking: true });
  t.deepEqual(actions, [{ type: "check" }]);
});

test("rules: the first answer decides where a member starts", (t) => {
  t.deepEqual(run([pass]), ["pass: up +1 -0 [schedule 2000, report]"]);
  t.deepEqual(run([fail]), ["fail: down +0 -1 [schedule 10000, report, log warn]"]);
});

test("rules: a member that is in goes out on exactly the fall-th failure in a row", (t) => {
  t.deepEqual(
    run([pass, due, fail, due, fail, due, fail]).filter((_, i) => i % 2 === 0),
    [
      "pass: up +1 -0 [schedule 2000, report]",
      "fail: up +0 -1 [schedule 2000]",
      "fail: up +0 -2 [schedule 2000]",
      "fail: down +0 -3 [schedule 10000, report, log warn]",
    ],
  );
});

test("rules: a pass in between starts the failure count over", (t) => {
  const lines = run([pass, due, fail, due, fail, due, pass, due, fail, due, fail]);
  t.is(lines.at(-1), "fail: up +0 -2 [schedule 2000]");
});

test("rules: a member that is out is retried at reconnectInterval, then at interval once it passes, back in at rise", (t) => {
  t.deepEqual(
    run([fail, due, fail, due, pass, due, pass]).filter((_, i) => i % 2 === 0),
    [
      "fail: down +0 -1 [schedule 10000, report, log warn]",
      "fail: down +0 -2 [schedule 10000]",
      "pass: down +1 -0 [schedule 2000]",
      "pass: up +2 -0 [schedule 2000, report, log info]",
    ],
  );
});

test("rules: a failure while rising sends the member back to the slow retry", (t) => {
  t.deepEqual(run([fail, due, pass, due, fail]).slice(3), [
    "due: down +1 -0 [check]",
    "fail: down +0 -1 [schedule 10000]",
  ]);
});

test("rules: rise and fall of 1 flip on a single answer", (t) => {
  const one = { ...rules, rise: 1, fall: 1 };
  t.deepEqual(
    run([pass, due, fail, due, pass], one).filter((_, i) => i % 2 === 0),
    [
      "pass: up +1 -0 [schedule 2000, report]",
      "fail: down +0 -1 [schedule 10000, report, log warn]",
      "pass: up +1 -0 [schedule 2000, report, log info]",
    ],
  );
});

test("rules: since moves only when the status changes; the last error is kept", (t) => {
  let { state } = firstHealth(0);
  const at = (event: HealthEvent, now: number): HealthState => {
    state = nextHealth(state, event, now, rules).state;
    return state;
  };
  t.is(at(pass, 5).since, 5);
  at(due, 2005);
  t.is(at({ type: "fail", error: "HTTP 503" }, 2010).since, 5);
  at(due, 4010);
  at(fail, 4015);
  at(due, 6015);
  const out = at(fail, 6020);
  t.is(out.status, "down");
  t.is(out.since, 6020);
  t.is(out.lastError, "ECONNREFUSED");
});

test("rules: events that do not fit change nothing", (t) => {
  const { state } = firstHealth(0);
  // A "due" while the first check runs: no second check.
  t.deepEqual(nextHealth(state, due, 1, rules), { state, actions: [] });
  // An answer nobody waits for (the check was already answered).
  const idle = nextHealth(state, pass, 1, rules).state;
  t.deepEqual(nextHealth(idle, fail, 2, rules), { state: idle, actions: [] });
});

// ---------------------------------------------------------------------------
// The shell on a manual clock: what the checks ask for happens when the clock says.

type Answer = "pass" | "fail" | "hang";

/** A probe whose answer per member the test sets; it records each check. */
class Probes {
  answers = new Map<string, Answer>();
  checks: string[] = [];
  readonly probe: HealthProbe = (url, _timeout, signal) => {
    const name = url.hostname.replace(/\.test$/, "");
    this.checks.push(`${name}${url.pathname}`);
    const answer = this.answers.get(name) ?? "pass";
    if (answer === "pass") return Promise.resolve();
    if (answer === "fail") return Promise.reject(new Error("HTTP 503"));
    return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted"))));
  };
  count(name: string): number {
    return this.checks.filter((c) => c.startsWith(`${name}/`)).length;
  }
}

const shellOptions = { path: "/healthz", interval: 2000, timeout: 1000, rise: 2, fall: 3, reconnectInterval: 10_000 };

async function checked(names: string[], answers: Record<string, Answer> = {}) {
  const clock = new ManualClock();
  const probes = new Probes();
  for (const [name, answer] of Object.entries(answers)) probes.answers.set(name, answer);
  const { logger, entries } = recordingLogger();
  const inner = new TestSource(names);
  const source = new HealthCheckedSource(inner, { ...shellOptions, probe: probes.probe, clock, logger });
  const cluster = new Cluster({ source, ring: { partitions: 32, replicas: 2 }, clock });
  const events: string[] = [];
  cluster.listen({
    memberUp: (m) => events.push(`up ${m.name}`),
    memberDown: (m) => events.push(`down ${m.name}`),
    ring: (r) => events.push(`ring ${r.members.join(",")}`),
  });
  return { clock, probes, entries, inner, source, cluster, events };
}

test("start waits for one check of each member: healthy ones start in, failing and silent ones never enter", async (t) => {
  const { clock, probes, entries, cluster, events } = await checked(["a", "b", "c"], { b: "fail", c: "hang" });
  const started = cluster.start();
  await flush();
  t.false(cluster.synced, "c's check has not answered yet");
  clock.advance(shellOptions.timeout);
  await within(started, { what: "start() once c's check timed out" });
  t.deepEqual(cluster.ring.members, ["a"]);
  t.deepEqual(events, ["up a", "ring a"], "one ring, no member in and out again");
  t.is(cluster.member("b")?.state, "failed");
  t.is(cluster.member("c")?.state, "failed");
  t.deepEqual(probes.checks.sort(), ["a/healthz", "b/healthz", "c/healthz"]);
  t.deepEqual(
    entries.filter((e) => e.level === "warn").map((e) => [e.member, e.error, e.msg]),
    [
      ["b", "HTTP 503", "member fails its first health check; kept out"],
      ["c", "no answer within 1000 ms", "member fails its first health check; kept out"],
    ],
  );
});

test("a member leaves the ring on exactly the fall-th failed check in a row", async (t) => {
  const { clock, probes, cluster, entries } = await checked(["a", "b"]);
  await cluster.start();
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  probes.answers.set("b", "fail");
  for (let i = 1; i < shellOptions.fall; i++) {
    await clock.run(shellOptions.interval);
    t.is(probes.count("b"), 1 + i);
    t.true(cluster.has("b"), `still in after ${i} failures`);
  }
  await clock.run(shellOptions.interval);
  t.deepEqual(cluster.ring.members, ["a"]);
  const out = entries.filter((e) => e.msg === "member failed its health checks; out");
  t.deepEqual(
    out.map((e) => [e.member, e.url, e.failures, e.error]),
    [["b", "http://b.test:80", 3, "HTTP 503"]],
  );
});

test("a member that is out is retried at reconnectInterval, not at the check interval", async (t) => {
  const { clock, probes, cluster } = await checked(["b"], { b: "fail" });
  await cluster.start();
  t.is(probes.count("b"), 1);
  await clock.run(shellOptions.reconnectInterval - 1);
  t.is(probes.count("b"), 1, "no check at the normal interval");
  await clock.run(1);
  t.is(probes.count("b"), 2);
  await clock.run(shellOptions.reconnectInterval);
  t.is(probes.count("b"), 3);
  t.is(clock.pending, 1, "one timer: the next check");
});

test("a member that is out comes back after exactly rise passes, checked at interval once it passes", async (t) => {
  const { clock, probes, cluster, entries, events } = await checked(["a", "b"], { b: "fail" });
  await cluster.start();
  t.false(cluster.has("b"));
  probes.answers.set("b", "pass");
  await clock.run(shellOptions.reconnectInterval);
  t.is(probes.count("b"), 2);
  t.false(cluster.has("b"), "one pass is not rise");
  await clock.run(shellOptions.interval);
  t.is(probes.count("b"), 3);
  t.true(cluster.has("b"), JSON.stringify([events, probes.checks]));
  t.deepEqual(events, ["up a", "ring a", "up b", "ring a,b"]);
  t.deepEqual(
    entries.filter((e) => e.level === "info").map((e) => [e.member, e.passes, e.msg]),
    [["b", 2, "member passes its health checks; back in"]],
  );
});

test("a check that gets no answer within the timeout counts as failed, and is cut", async (t) => {
  const { clock, probes, cluster } = await checked(["a", "b"]);
  await cluster.start();
  probes.answers.set("b", "hang");
  // Each hanging check fails at its timeout; the next one starts an interval after that.
  for (let i = 1; i <= shellOptions.fall; i++) {
    await clock.run(shellOptions.interval);
    await clock.run(shellOptions.timeout - 1);
    t.is(probes.count("b"), 1 + i, "no new check while one hangs");
    t.true(cluster.has("b"), `in until the ${i}th check times out`);
    await clock.run(1);
  }
  t.deepEqual(cluster.ring.members, ["a"]);
});

test("a member gone from the source stops being checked; one back is checked afresh", async (t) => {
  const { clock, probes, inner, cluster } = await checked(["a", "b"]);
  await cluster.start();
  inner.send("a");
  await flush();
  t.deepEqual(cluster.ring.members, ["a"]);
  const before = probes.count("b");
  await clock.run(shellOptions.interval * 5);
  t.is(probes.count("b"), before);
  probes.answers.set("b", "fail");
  inner.send("a", "b");
  await flush();
  t.is(probes.count("b"), before + 1, "checked at once");
  t.is(cluster.member("b")?.state, "failed", "its first check decides again");
});

test("members the inner source does not call alive are passed through and not checked", async (t) => {
  const clock = new ManualClock();
  const probes = new Probes();
  const inner = new TestSource(["a", { name: "b", state: "left" }], "manual");
  const source = new HealthCheckedSource(inner, { ...shellOptions, probe: probes.probe, clock });
  t.is(source.kind, "manual");
  const cluster = new Cluster({ source, clock });
  await cluster.start();
  await clock.run(shellOptions.interval * 3);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.is(cluster.member("b")?.state, "left");
  t.is(probes.count("b"), 0);
});

test("after stop no timer is left and no more checks are made", async (t) => {
  const { clock, probes, cluster } = await checked(["a", "b"], { b: "fail" });
  await cluster.start();
  await cluster.stop();
  t.is(clock.pending, 0);
  const checks = probes.checks.length;
  await clock.run(shellOptions.reconnectInterval * 3);
  t.is(probes.checks.length, checks);
});

test("a source that goes down is passed on; its next snapshot, even unchanged, brings it back", async (t) => {
  const { inner, cluster } = await checked(["a"]);
  await cluster.start();
  inner.fail(new Error("gone"));
  t.false(cluster.sourceUp);
  inner.send("a");
  await flush();
  t.true(cluster.sourceUp);
});

// ---------------------------------------------------------------------------
// Real HTTP on loopback, real time: the probe and the config.

async function backend(status: number | "hang" = 200) {
  const paths: string[] = [];
  const hanging: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? "");
    if (status === "hang") hanging.push(res);
    else res.writeHead(status).end("ok");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  };
  return { url, paths, close };
}

test("the HTTP probe passes 2xx and 3xx and fails other statuses, refused connections and aborts", async (t) => {
  const ok = await backend(204);
  const moved = await backend(301);
  const bad = await backend(503);
  const silent = await backend("hang");
  const gone = await backend();
  await gone.close();
  t.teardown(() => Promise.all([ok.close(), moved.close(), bad.close(), silent.close()]));
  const signal = new AbortController().signal;
  await t.notThrowsAsync(httpProbe(new URL("/healthz", ok.url), 1000, signal));
  await t.notThrowsAsync(httpProbe(new URL("/healthz", moved.url), 1000, signal));
  await t.throwsAsync(httpProbe(new URL("/healthz", bad.url), 1000, signal), { message: "HTTP 503" });
  await t.throwsAsync(httpProbe(new URL("/healthz", gone.url), 1000, signal), { code: "ECONNREFUSED" });
  const abort = new AbortController();
  const hanging = httpProbe(new URL("/healthz", silent.url), 1000, abort.signal);
  await until(() => silent.paths.length === 1, { what: "the silent backend to receive the check" });
  abort.abort();
  await t.throwsAsync(within(hanging, { what: "the aborted check to fail" }), { name: "AbortError" });
  t.deepEqual(ok.paths, ["/healthz"]);
});

test("health checks configured but disabled are not made: the source is the bare static one", (t) => {
  const config = parseMembershipConfig({
    static: { members: [{ name: "a", url: "http://127.0.0.1:1" }] },
    health: { enabled: false, interval: "20ms" },
  });
  const source = createSource(config);
  t.true(source instanceof StaticSource);
});

test("configured health checks wrap the static source and check the configured path over HTTP", async (t) => {
  const a = await backend();
  const b = await backend(404);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const config = parseMembershipConfig({
    static: {
      members: [
        { name: "a", url: a.url },
        { name: "b", url: b.url },
      ],
    },
    health: { path: "/ready?deep=1", interval: "50ms", timeout: "10s" },
  });
  const cluster = new Cluster({ source: createSource(config) });
  t.teardown(() => cluster.stop());
  t.is(cluster.sourceKind, "static");
  await within(cluster.start(), { what: "the first checks of a and b" });
  t.deepEqual(cluster.ring.members, ["a"]);
  t.is(a.paths[0], "/ready?deep=1");
  t.is(cluster.member("b")?.state, "failed");
});

test("a static source without health checks puts every member in the ring at once", async (t) => {
  const cluster = new Cluster({
    source: createSource(parseMembershipConfig({ static: { members: [{ name: "x", url: "http://127.0.0.1:1" }] } })),
  });
  await cluster.start();
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["x"]);
  await cluster.stop();
});
