import type { ChildProcess } from "node:child_process";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { type Backend, send, startBackends } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";
import { startServe } from "./helpers/serve.ts";
import { until, within } from "./helpers/until.ts";

interface RingView {
  checksum: string;
  routingVersion: number;
  workers: { pid: number; version: number | null; inSync: boolean }[];
}

interface Running {
  child: ChildProcess;
  proxy: string;
  admin: string;
  exit: Promise<number | null>;
  output: () => string;
  ring: () => Promise<RingView>;
  metrics: () => Promise<string>;
  /** Rewrites the members file (atomically) to list these backends. */
  members: (backends: Backend[]) => void;
}

/** Starts `ringroute serve --workers 2` with a members file listing `backends`, on ephemeral loopback ports. */
async function serveWorkers(backends: Backend[], args: string[] = [], yaml = ""): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-workers-"));
  const file = join(dir, "members.txt");
  const members = (list: Backend[]) => {
    writeFileSync(`${file}.tmp`, list.map((b) => `${b.name} ${b.url}\n`).join(""));
    renameSync(`${file}.tmp`, file);
  };
  members(backends);
  writeFileSync(
    join(dir, "ringroute.yaml"),
    `membership:\n  file:\n    path: ${file}\n    pollInterval: 100ms\n${yaml}`,
  );
  const { child, proxy, admin, exit, output } = await startServe([
    "--config",
    join(dir, "ringroute.yaml"),
    "--workers",
    "2",
    ...args,
  ]);
  return {
    child,
    proxy,
    admin,
    exit,
    output,
    ring: async () => (await send(admin, "/ring")).json as RingView,
    metrics: async () => (await send(admin, "/metrics")).text,
    members,
  };
}

/** The sum of a metric's samples, over every label set. */
function total(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Both workers running and routing by the primary's latest routing version, whose ring is `checksum`. */
const workersOn = (running: Running, checksum: string) => async () => {
  const ring = await running.ring();
  return ring.checksum === checksum &&
    ring.workers.length === 2 &&
    ring.workers.every((w) => w.version === ring.routingVersion && w.inSync)
    ? ring
    : undefined;
};

const keys = Array.from({ length: 24 }, (_, i) => `/users/${i}`);

test.serial(
  "two workers forward each key to its owner and route by the primary's ring, also after a membership change",
  async (t) => {
    t.timeout(180_000, "three processes starting under tsx on a busy machine");
    const backends = await startBackends(["a", "b", "c"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const running = await serveWorkers(backends.slice(0, 2));
    t.teardown(() => running.child.kill("SIGKILL"));

    const before = Ring.build(["a", "b"]);
    const ring = await until(workersOn(running, before.checksum), { what: "both workers on the ring of a, b" });
    t.is(new Set(ring.workers.map((w) => w.pid)).size, 2, "two processes");
    t.false(
      ring.workers.some((w) => w.pid === running.child.pid),
      "the primary proxies nothing itself",
    );
    t.true(ring.workers.every((w) => w.inSync));
    // Each request on its own connection: node:cluster hands connections to the workers in turn.
    for (const key of keys) {
      const reply = await send(running.proxy, key);
      t.is(reply.status, 200);
      t.is((reply.json as { backend?: string }).backend, before.ownerOf(key), key);
    }

    running.members(backends);
    const after = Ring.build(["a", "b", "c"]);
    await until(workersOn(running, after.checksum), { what: "both workers on the ring of a, b, c" });
    for (const key of keys) {
      const reply = await send(running.proxy, key);
      t.is((reply.json as { backend?: string }).backend, after.ownerOf(key), key);
    }
  },
);

test.serial("/metrics shows the sum of both workers' requests, and the cluster's gauges once", async (t) => {
  t.timeout(180_000, "three processes starting under tsx on a busy machine");
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  const running = await serveWorkers(backends);
  t.teardown(() => running.child.kill("SIGKILL"));
  await until(workersOn(running, Ring.build(["a", "b"]).checksum), { what: "both workers on the ring" });
  for (const key of keys) t.is((await send(running.proxy, key)).status, 200);
  const text = await running.metrics();
  t.is(total(text, "ringroute_requests_total"), keys.length);
  t.is(total(text, "ringroute_request_duration_seconds_count"), keys.length);
  t.regex(text, /^ringroute_members\{state="alive"\} 2$/m, "members counted by the primary alone, not per worker");
  t.is(total(text, "ringroute_member_up"), 2, "one sample a member, from the primary alone");
  t.is(total(text, "ringroute_build_info"), 1);
  t.is(total(text, "ringroute_partitions_owned"), 512 * 2);
  t.is(total(text, "ringroute_worker_restarts_total"), 0);
});

test.serial("with workers, a departed member's series leave /metrics after metrics.memberRetention", async (t) => {
  t.timeout(180_000, "three processes starting under tsx on a busy machine");
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  // 0: dropped at the first scrape after the member left (the default hour cannot be waited out here).
  const running = await serveWorkers(backends, [], "metrics: { memberRetention: 0s }\n");
  t.teardown(() => running.child.kill("SIGKILL"));
  await until(workersOn(running, Ring.build(["a", "b"]).checksum), { what: "both workers on the ring" });
  for (const key of keys) t.is((await send(running.proxy, key)).status, 200);
  const before = await running.metrics();
  t.regex(before, /^ringroute_requests_total\{member="b",/m);
  running.members(backends.slice(0, 1));
  await until(workersOn(running, Ring.build(["a"]).checksum), { what: "both workers on the ring of a alone" });
  const after = await running.metrics();
  t.notRegex(after, /member="b"/, "no series of b in either worker's or the primary's output");
  t.regex(after, /^ringroute_requests_total\{member="a",/m);
});

test.serial("a worker that dies is replaced, counted, and gets the current ring", async (t) => {
  t.timeout(180_000, "three processes starting under tsx on a busy machine");
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  const running = await serveWorkers(backends);
  t.teardown(() => running.child.kill("SIGKILL"));
  const checksum = Ring.build(["a", "b"]).checksum;
  const before = await until(workersOn(running, checksum), { what: "both workers on the ring" });
  const victim = before.workers[0]?.pid as number;
  process.kill(victim, "SIGKILL");
  const after = await until(
    async () => {
      const ring = await workersOn(running, checksum)();
      return ring && !ring.workers.some((w) => w.pid === victim) ? ring : undefined;
    },
    { what: "a new worker in place of the killed one, on the ring" },
  );
  t.true(
    after.workers.some((w) => w.pid === before.workers[1]?.pid),
    "the other worker kept running",
  );
  t.regex(await running.metrics(), /^ringroute_worker_restarts_total 1$/m);
  for (const key of keys) t.is((await send(running.proxy, key)).status, 200);
});

test.serial("SIGTERM drains every worker and the primary exits 0 once they are done", async (t) => {
  t.timeout(180_000, "three processes starting under tsx on a busy machine");
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  for (const b of backends) {
    b.handler = (req, res) => {
      req.resume();
      if (!req.url?.startsWith("/held")) res.end("ok");
      // /held is never answered: the drain has to cut it at shutdownTimeout.
    };
  }
  const shutdownTimeout = 2_000;
  const running = await serveWorkers(backends, ["--shutdown-timeout", `${shutdownTimeout}ms`]);
  t.teardown(() => running.child.kill("SIGKILL"));
  const ring = await until(workersOn(running, Ring.build(["a", "b"]).checksum), { what: "both workers on the ring" });
  const held = [send(running.proxy, "/held/1"), send(running.proxy, "/held/2")].map((p) =>
    p.then(
      () => "answered",
      () => "cut",
    ),
  );
  await until(() => backends.reduce((n, b) => n + b.seen.length, 0) === 2, { what: "both held requests at a backend" });
  const signalled = Date.now();
  running.child.kill("SIGTERM");
  // The primary kills a worker still there at shutdownTimeout + 1 s; the deadline here only guards against a hang.
  t.is(await within(running.exit, { what: "the primary to exit", timeout: shutdownTimeout + 20_000 }), 0);
  t.true(Date.now() - signalled >= shutdownTimeout - 100, "the workers waited for requests in flight");
  t.deepEqual(await Promise.all(held), ["cut", "cut"]);
  t.false(
    ring.workers.some((w) => alive(w.pid)),
    "no worker outlives the primary",
  );
  // 'exit' can come before the last of stderr is read: wait for the line rather than look once.
  await until(() => /SIGTERM: shutting down/.test(running.output()), { what: "the SIGTERM line in the output" });
});

test("--workers takes a count or auto; anything else exits 2 naming the field", async (t) => {
  const run = await ringroute(["serve", "--workers", "0"]);
  t.is(run.code, 2);
  t.is(run.stderr, 'ringroute: workers: must be a positive integer, got "0"\n');
});
