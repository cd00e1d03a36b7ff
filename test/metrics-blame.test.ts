/**
 * The metrics that say whose fault a failed request was: the member's
 * (`upstream_errors_total`), the client's (`client_errors_total`), or no
 * free connection (`queue_timeouts_total`); a response cut short counts as
 * `code="truncated"`, not as the status it began with.
 */
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { Cluster } from "../src/cluster.ts";
import { TestSource } from "./helpers/backends.ts";

function sample(text: string, line: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test("client errors, queue timeouts, truncated responses and member-side reasons each have their series", async (t) => {
  const cluster = new Cluster({ source: new TestSource([{ name: "a", url: "http://127.0.0.1:1" }]) });
  await cluster.start();
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  t.teardown(async () => {
    metrics.close();
    await cluster.stop();
  });
  for (const reason of ["head_timeout", "body_timeout", "slow_reader", "aborted", "bad_request"] as const) {
    metrics.clientError(reason);
  }
  metrics.clientError("slow_reader");
  metrics.queueTimeout("a");
  metrics.request("a", "GET", "truncated", 0.5);
  metrics.request("a", "GET", 200, 0.01);
  metrics.upstreamError("a", "bad_response");
  const text = await metrics.text();
  t.is(sample(text, 'ringroute_client_errors_total{reason="slow_reader"}'), 2);
  t.is(sample(text, 'ringroute_client_errors_total{reason="aborted"}'), 1);
  t.is(sample(text, 'ringroute_client_errors_total{reason="head_timeout"}'), 1);
  t.is(sample(text, 'ringroute_queue_timeouts_total{member="a"}'), 1);
  t.is(sample(text, 'ringroute_requests_total{member="a",code="truncated",method="GET",protocol="http/1.1"}'), 1);
  t.is(sample(text, 'ringroute_requests_total{member="a",code="200",method="GET",protocol="http/1.1"}'), 1);
  t.is(sample(text, 'ringroute_upstream_errors_total{member="a",reason="bad_response"}'), 1);
});
