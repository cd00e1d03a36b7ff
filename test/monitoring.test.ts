import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { parse as parseYaml } from "yaml";
import type { ClientProtocol } from "../src/proxy/observer.ts";
import { type Backend, startBackends } from "./helpers/backends.ts";
import { sendAs } from "./helpers/h2.ts";
import { Prometheus } from "./helpers/prometheus.ts";
import { startServe } from "./helpers/serve.ts";
import { until } from "./helpers/until.ts";

// Debian's `prometheus` package installs both programs; CI installs it, and a missing one fails.
const run = promisify(execFile);
const promtool = "/usr/bin/promtool";
const monitoring = fileURLToPath(new URL("../monitoring/", import.meta.url));

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { refId: string; expr: string }[];
}

async function rules(): Promise<Rule[]> {
  const file = parseYaml(await readFile(`${monitoring}ringroute-alerts.yaml`, "utf8"));
  return file.groups.flatMap((g: { rules: Rule[] }) => g.rules);
}

async function dashboard(): Promise<{ panels: Panel[]; templating: { list: { name: string }[] }; uid: string }> {
  return JSON.parse(await readFile(`${monitoring}ringroute-dashboard.json`, "utf8"));
}

/** Panels whose queries must return series against a proxy that served traffic: requests and members. */
const mustHaveData = [
  "Requests by member",
  "Errors (5xx) by member",
  "Responses by status code",
  "Requests by protocol",
  "5xx ratio by protocol",
  "Latency p50 / p99 by member",
  "Latency distribution",
  "Requests in flight",
  "Member up",
  "Members by state",
  "Primary partitions by member",
  "Membership source up",
  "Processes and CPU",
];

/** What Grafana substitutes before sending a query: its rate window and the dashboard's variables. */
function substituted(expr: string, job: string): string {
  return expr.replaceAll("$__rate_interval", "15s").replaceAll("$job", job).replaceAll("$instance", ".*");
}

test("promtool check rules accepts the alerting rules", async (t) => {
  const { stdout } = await run(promtool, ["check", "rules", `${monitoring}ringroute-alerts.yaml`]);
  t.regex(stdout, /SUCCESS: 7 rules found/);
});

test("promtool test rules: every alert fires when it should and stays quiet when it should not", async (t) => {
  const { stdout } = await run(promtool, ["test", "rules", `${monitoring}ringroute-alerts.test.yaml`], {
    cwd: monitoring,
  });
  t.regex(stdout, /SUCCESS/);
  // Each alert has a firing case and a quiet case in the unit tests.
  const tests = parseYaml(await readFile(`${monitoring}ringroute-alerts.test.yaml`, "utf8")).tests as {
    alert_rule_test: { alertname: string; exp_alerts: unknown[] }[];
  }[];
  const cases = tests.flatMap((c) => c.alert_rule_test);
  for (const { alert } of await rules()) {
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
      `${alert} has a case where it fires`,
    );
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0),
      `${alert} has a case where it stays quiet`,
    );
  }
});

test("every alert aggregates by named labels, has a severity and a runbook section", async (t) => {
  const readme = await readFile(`${monitoring}README.md`, "utf8");
  const headings = new Set([...readme.matchAll(/^### (\w+)$/gm)].map((m) => (m[1] as string).toLowerCase()));
  const all = await rules();
  t.deepEqual(
    all.map((r) => r.alert),
    [
      "RingrouteMemberDown",
      "RingrouteMembersEjected",
      "RingrouteMembershipSourceDown",
      "RingrouteRingVersionNotStable",
      "RingroutePartitionsStuckInHandoff",
      "RingrouteHigh5xxRatio",
      "RingrouteConfigReloadFailed",
    ],
  );
  for (const rule of all) {
    // A metric used bare would carry every label into the alert; new labels would split it.
    t.regex(rule.expr, /^\s*(sum|max|min) by \(/, `${rule.alert} aggregates`);
    t.notRegex(rule.expr, /\bwithout\b/, `${rule.alert} names the labels it keeps`);
    t.true(["warning", "critical"].includes(rule.labels.severity ?? ""), `${rule.alert} severity`);
    t.truthy(rule.annotations.summary && rule.annotations.description, `${rule.alert} summary and description`);
    const anchor = /^monitoring\/README\.md#(\w+)$/.exec(rule.annotations.runbook_url ?? "")?.[1];
    t.true(anchor !== undefined && headings.has(anchor), `${rule.alert} runbook_url names a README section`);
  }
});

test("the dashboard's panels are well formed: unique ids, on the 24-column grid, each target a PromQL expression", async (t) => {
  const board = await dashboard();
  t.is(board.uid, "ringroute");
  t.deepEqual(
    board.templating.list.map((v) => v.name),
    ["datasource", "job", "instance"],
  );
  const ids = board.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, "panel ids are unique");
  const titles = board.panels.map((p) => p.title);
  t.is(new Set(titles).size, titles.length, "panel titles are unique");
  for (const panel of board.panels) {
    const { x, w, h } = panel.gridPos;
    t.true(x >= 0 && w > 0 && h > 0 && x + w <= 24, `${panel.title} fits the grid`);
    if (panel.type === "row") continue;
    t.true((panel.targets?.length ?? 0) > 0, `${panel.title} has a query`);
    for (const target of panel.targets ?? []) {
      t.regex(target.expr, /\bringroute_|process_/, `${panel.title} queries ringroute's metrics`);
      t.regex(target.expr, /job=~"\$job", instance=~"\$instance"/, `${panel.title} follows the variables`);
    }
  }
  for (const title of mustHaveData) t.true(titles.includes(title), `panel ${title} exists`);
  // What the issue asks the dashboard to show.
  for (const metric of [
    "ringroute_requests_total",
    "ringroute_request_duration_seconds_bucket",
    "ringroute_ring_version",
    "ringroute_stable_version",
    "ringroute_partitions_in_handoff",
    "ringroute_ejections_total",
    "ringroute_membership_source_up",
    "ringroute_config_reloads_total",
    "ringroute_worker_restarts_total",
  ]) {
    t.true(
      board.panels.some((p) => p.targets?.some((q) => q.expr.includes(`${metric}{`))),
      `a panel shows ${metric}`,
    );
  }
});

/** Backends that answer 500 on /fail, so the 5xx panels have data. */
async function backends(): Promise<Backend[]> {
  const list = await startBackends(["alpha", "bravo", "charlie"]);
  for (const b of list) {
    b.handler = (req, res) => {
      req.resume();
      res.statusCode = req.url?.startsWith("/fail") ? 500 : 200;
      res.end(b.name);
    };
  }
  return list;
}

for (const workers of [1, 2]) {
  const mode = workers === 1 ? "one process" : "workers: 2";
  test.serial(
    `a real Prometheus scrapes ringroute (${mode}); every dashboard query runs, request and member panels have data`,
    async (t) => {
      const members = await backends();
      t.teardown(() => Promise.all(members.map((b) => b.kill())));
      const serving = await startServe([
        "--members",
        members.map((b) => `${b.name}=${b.url}`).join(","),
        "--workers",
        String(workers),
      ]);
      t.teardown(() => serving.stop());
      const target = new URL(serving.admin).host;
      const prometheus = await Prometheus.start("ringroute", [target]);
      t.teardown(() => prometheus.stop());

      const targets = await until(
        async () => {
          const list = await prometheus.targets();
          return list.length === 1 && list[0]?.health === "up" ? list : undefined;
        },
        { what: "the ringroute target up in /api/v1/targets", timeout: 60_000, interval: 200 },
      );
      t.is(targets[0]?.scrapeUrl, `http://${target}/metrics`);
      t.deepEqual(
        (await prometheus.query('up{job="ringroute"}')).map((s) => s.value[1]),
        ["1"],
      );

      // Traffic in two rounds of 30 keys, each scraped before the next, so rates have two samples;
      // every fifth key is answered 500 by its member; every third is sent over h2 (prior knowledge).
      const round = 30;
      const protocolOf = (i: number): ClientProtocol => (i % 3 === 1 ? "h2" : "http/1.1");
      for (const first of [0, round]) {
        for (let i = first; i < first + round; i++) {
          const reply = await sendAs(protocolOf(i), serving.proxy, i % 5 === 0 ? `/fail/${i}` : `/k/${i}`);
          t.is(reply.status, i % 5 === 0 ? 500 : 200);
        }
        // Counters summed over members (and over workers) reach what was sent.
        await until(
          async () => {
            const [total] = await prometheus.query('sum(ringroute_requests_total{job="ringroute"})');
            return total?.value[1] === String(first + round);
          },
          {
            what: `sum(ringroute_requests_total) to reach ${first + round} in Prometheus`,
            timeout: 60_000,
            interval: 200,
          },
        );
      }
      const sent = 2 * round;
      const byMember = await prometheus.query('sum by (member) (ringroute_requests_total{job="ringroute"})');
      const served = byMember.map((s) => s.metric.member).sort();
      t.true(served.length > 1, "requests spread over more than one member");
      t.true(
        served.every((m) => ["alpha", "bravo", "charlie"].includes(m as string)),
        `member labels name the members: ${served}`,
      );
      const up = await prometheus.query('ringroute_member_up{job="ringroute"}');
      t.deepEqual(up.map((s) => `${s.metric.member}=${s.value[1]}`).sort(), ["alpha=1", "bravo=1", "charlie=1"]);
      const fails = await prometheus.query('sum(ringroute_requests_total{job="ringroute", code="500"})');
      t.is(fails[0]?.value[1], String(sent / 5));
      // The protocol label splits what each protocol carried; summed over it, the totals above stand.
      const keys = Array.from({ length: sent }, (_, i) => i);
      const byProtocol = await prometheus.query('sum by (protocol) (ringroute_requests_total{job="ringroute"})');
      t.deepEqual(Object.fromEntries(byProtocol.map((s) => [s.metric.protocol, s.value[1]])), {
        "http/1.1": String(keys.filter((i) => protocolOf(i) === "http/1.1").length),
        h2: String(keys.filter((i) => protocolOf(i) === "h2").length),
      });
      const h2Fails = await prometheus.query(
        'sum by (protocol) (ringroute_requests_total{job="ringroute", code="500", protocol="h2"})',
      );
      t.is(h2Fails[0]?.value[1], String(keys.filter((i) => i % 5 === 0 && protocolOf(i) === "h2").length));

      // A rate needs two samples of the counter after the traffic: wait for one more scrape with it.
      await until(
        async () => {
          const rate = await prometheus.query('sum(rate(ringroute_requests_total{job="ringroute"}[15s]))');
          return rate.length === 1 && Number(rate[0]?.value[1]) > 0;
        },
        { what: "a non-zero rate over ringroute_requests_total", timeout: 60_000, interval: 200 },
      );

      for (const panel of (await dashboard()).panels) {
        for (const target of panel.targets ?? []) {
          const expr = substituted(target.expr, "ringroute");
          const result = await prometheus.query(expr); // throws on a PromQL error
          if (mustHaveData.includes(panel.title) && target.refId === "A") {
            t.true(result.length > 0, `${panel.title}: ${expr} returns series`);
          }
        }
      }
    },
  );
}
