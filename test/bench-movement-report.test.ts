import test from "ava";
import { ringrouteConfigurations } from "../bench/movement/configurations.ts";
import { renderReport } from "../bench/movement/report.ts";
import { type Grid, runGrid } from "../bench/movement/run.ts";

// A small real run: ringroute's own placements, two sizes, one partition count.
const grid: Grid = { sizes: [4, 12], partitions: [2048], replicas: [1] };
const configurations = ringrouteConfigurations();
const cells = runGrid(grid, configurations, () => {});
const context = { grid, configurations, orderFree: ["balanced"], machine: "test", seconds: 3.4 };

test("the summary's columns follow the member counts of the run, and every cell is filled", (t) => {
  const report = renderReport(cells, { ...context, command: "npm run bench:movement -- --sizes 4,12", written: false });
  const summary = report.slice(report.indexOf("## Summary"), report.indexOf("## Recommendation"));
  const header = summary.split("\n").find((line) => line.startsWith("| configuration")) ?? "";
  const columns = header
    .split("|")
    .map((c) => c.trim())
    .filter((c) => c !== "");
  t.deepEqual(columns, [
    "configuration",
    "join, n=4",
    "join, n=12",
    "leave, n=12",
    "replace, n=12",
    "StatefulSet +1, n=12",
    "StatefulSet −1, n=12",
    "20 changes, n=12",
    "busiest/mean, n=12",
    "build ms, n=12",
  ]);
  const rows = summary.split("\n").filter((line) => configurations.some((c) => line.startsWith(`| ${c.name} `)));
  t.is(rows.length, configurations.length);
  for (const row of rows) t.false(row.includes("–"), row);
});

test("a printed report says how long it took and claims to have written nothing", (t) => {
  const printed = renderReport(cells, { ...context, command: "npm run bench:movement -- --quick", written: false });
  t.true(printed.includes("Printed by `npm run bench:movement -- --quick` in 3 s"));
  t.false(printed.includes("Written by"));
  t.false(printed.includes("movement.svg"), "no chart that was not written");
  const written = renderReport(cells, { ...context, command: "npm run bench:movement", written: true });
  t.true(written.includes("Written by `npm run bench:movement` in 3 s"));
  t.true(written.includes("](movement.svg)"));
});

test("the recommendation follows from the results: balanced in general, jump for libring and StatefulSets", (t) => {
  const report = renderReport(cells, { ...context, command: "npm run bench:movement", written: false });
  const advice = report.slice(report.indexOf("## Recommendation"), report.indexOf("## Configurations"));
  const line = (start: string) => advice.split("\n").find((l) => l.startsWith(start)) ?? "";
  t.regex(
    line("- **A member fails or leaves:**"),
    /^[^;]*balanced ×1\.\d/,
    "balanced among the least-moving on a failure",
  );
  t.regex(line("- **A member fails or leaves:**"), /against .*jump\+lexical ×\d/);
  t.regex(
    line("- **StatefulSet scale-down:**"),
    /jump\+natural ×1\.\d/,
    "jump with natural order moves about the optimum there",
  );
  t.true(line("- **`jump` with `order: natural`**") !== "");
  t.true(line("- **In general:").startsWith("- **In general: `balanced`**"), line("- **In general:"));
  t.regex(line("- **Beside libring:**"), /compat: libring/);
});
