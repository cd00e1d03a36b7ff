import { spawn } from "node:child_process";
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { send, startProxy } from "./helpers/backends.ts";

/** Debian's `prometheus` package installs it; CI installs the package, and a missing promtool fails. */
const promtool = "/usr/bin/promtool";

function checkMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

test("promtool check metrics passes on the full /metrics output, default metrics included, after traffic and churn", async (t) => {
  let metrics: Metrics | undefined;
  const h = await startProxy(["alpha", "bravo", "charlie"], {
    observer: {
      request: (...args) => metrics?.request(...args),
      upstreamError: (...args) => metrics?.upstreamError(...args),
      failover: () => metrics?.failover(),
      ejection: (member) => metrics?.ejection(member),
    },
  });
  metrics = new Metrics(h.cluster, { ejected: h.proxy.ejected });
  const admin = createAdminServer({ cluster: h.cluster, metrics, ejected: h.proxy.ejected });
  const { port } = await admin.listen(0, "127.0.0.1");
  t.teardown(async () => {
    await admin.close();
    metrics?.close();
    await h.close();
  });
  for (let i = 0; i < 20; i++) await send(h.url, `/k/${i}`);
  await send(h.url, "/bad%zz");
  metrics.upstreamError("alpha", "connect");
  metrics.ejection("alpha");
  metrics.failover();
  h.source.set(h.backends.filter((b) => b.name !== "charlie").map(({ name, url }) => ({ name, url })));

  const text = (await send(`http://127.0.0.1:${port}`, "/metrics")).text;
  t.regex(text, /^nodejs_/m, "the default metrics are part of what is checked");
  const result = await checkMetrics(text);
  t.is(result.output, "", "promtool has no complaint");
  t.is(result.code, 0);
});
