import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { send, TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";

async function startAdmin(sourceDown?: "ready" | "unready") {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const source = new TestSource([{ name: "a", url: "http://127.0.0.1:1" }]);
  const cluster = new Cluster({ source });
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics, clock, readiness: sourceDown && { sourceDown } });
  const { port } = await admin.listen(0, "127.0.0.1");
  await cluster.start();
  return {
    clock,
    source,
    admin,
    base: `http://127.0.0.1:${port}`,
    async close() {
      await admin.close();
      metrics.close();
      await cluster.stop();
    },
  };
}

test("with sourceDown: ready (the default), a down source is reported in the body and /readyz stays 200", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  const up = await send(all.base, "/readyz");
  t.is(up.status, 200);
  t.like(up.json, {
    ready: true,
    reasons: [],
    sourceDown: "ready",
    source: { kind: "test", up: true, lastError: null },
  });

  all.clock.advance(5_000);
  all.source.fail(new Error("agent gone"));
  const down = await send(all.base, "/readyz");
  t.is(down.status, 200, "routing on the last good view");
  t.like(down.json, {
    ready: true,
    members: 1,
    source: { up: false, since: "2026-01-01T00:00:05.000Z", lastError: "agent gone" },
  });

  all.clock.advance(1_000);
  all.source.fail(new Error("still gone"));
  all.clock.advance(1_000);
  all.source.set([{ name: "a", url: "http://127.0.0.1:1" }]);
  const back = await send(all.base, "/readyz");
  t.like(back.json, {
    ready: true,
    source: { up: true, since: "2026-01-01T00:00:07.000Z", lastError: "still gone" },
  });
});

test("with sourceDown: unready, /readyz is 503 while the source is down and 200 once it delivers", async (t) => {
  const all = await startAdmin("unready");
  t.teardown(() => all.close());
  t.is((await send(all.base, "/readyz")).status, 200);
  all.source.fail(new Error("agent gone"));
  const down = await send(all.base, "/readyz");
  t.is(down.status, 503);
  t.like(down.json, { ready: false, reasons: ["source_down"], source: { up: false, lastError: "agent gone" } });
  all.source.set([{ name: "a", url: "http://127.0.0.1:1" }]);
  t.is((await send(all.base, "/readyz")).status, 200);
});

test("/readyz turns 503 once shutdown begins, while the other endpoints keep answering", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  t.is((await send(all.base, "/readyz")).status, 200);
  all.admin.draining();
  const draining = await send(all.base, "/readyz");
  t.is(draining.status, 503);
  t.like(draining.json, { ready: false, shuttingDown: true, reasons: ["shutting_down"] });
  t.is((await send(all.base, "/healthz")).status, 200);
  t.is((await send(all.base, "/ring?table=false")).status, 200);
});

test("/readyz is 503 with no_members when the source reports an empty ring", async (t) => {
  const all = await startAdmin();
  t.teardown(() => all.close());
  all.source.set([]);
  const empty = await send(all.base, "/readyz");
  t.is(empty.status, 503);
  t.deepEqual(empty.json.reasons, ["no_members"]);
});
