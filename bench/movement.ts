/**
 * The partition-movement benchmark: every placement side by side, for the
 * cluster sizes, partition counts and replica counts users choose between,
 * over random joins, leaves, replacements, a StatefulSet scale-out and
 * scale-down and runs of 20 changes, and ends with a recommendation. Writes bench/results/movement.md and movement.svg.
 *
 *   npm run bench:movement              full grid, writes the results
 *   npm run bench:movement -- --quick   a small grid, printed, nothing written
 *
 * A grid of your own is printed too, nothing written: --sizes 59-100 (a range,
 * or a list like 10,30,100), --partitions 2048,4096, --replicas 1 and
 * --only balanced (configuration names, as in the table headers).
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { placements } from "../src/ring/placement/index.ts";
import { comparisonConfigurations, orderMatters, ringrouteConfigurations } from "./movement/configurations.ts";
import { planFromArgs } from "./movement/flags.ts";
import { renderReport } from "./movement/report.ts";
import { runGrid } from "./movement/run.ts";
import { type ScenarioId, scenarios, seed } from "./movement/scenarios.ts";
import { renderChart } from "./movement/svg.ts";

/** Bad flags end the run with one line naming the flag, and exit status 2, as the CLI does. */
function usageError(message: string): never {
  process.stderr.write(`bench:movement: ${message}\n`);
  process.exit(2);
}

const { grid, only, printOnly } = (() => {
  try {
    return planFromArgs(process.argv.slice(2));
  } catch (error) {
    return usageError((error as Error).message);
  }
})();

const everything = [...ringrouteConfigurations(), ...(await comparisonConfigurations())];
const unknown = only?.filter((name) => !everything.some((c) => c.name === name)) ?? [];
if (unknown.length > 0) {
  usageError(`--only: no configuration named ${unknown.join(", ")} (have ${everything.map((c) => c.name).join(", ")})`);
}
const configurations = only === undefined ? everything : everything.filter((c) => only.includes(c.name));
const orderFree = (Object.keys(placements) as (keyof typeof placements)[]).filter((p) => !orderMatters(p));
process.stderr.write(`configurations: ${configurations.map((c) => c.name).join(", ")}\n`);

const started = Date.now();
const cells = runGrid(grid, configurations, (line) => process.stderr.write(`${line}\n`));
const seconds = (Date.now() - started) / 1000;

const machine = `Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"}`;
const command = ["npm run bench:movement", ...(process.argv.length > 2 ? ["--", ...process.argv.slice(2)] : [])].join(
  " ",
);
const report = renderReport(cells, { grid, configurations, orderFree, machine, seconds, command, written: !printOnly });

// The chart: P = 2048, R = 1, one panel per scenario.
const chartPartitions = 2048;
const byId = (id: ScenarioId) => scenarios.find((s) => s.id === id) as (typeof scenarios)[number];
const chart = renderChart({
  title: "Partitions moved per membership change",
  subtitle: `share of primaries that change owner, P = ${chartPartitions}, R = 1; lower is better, the dashed line is the least possible`,
  footer: `Each point is the mean of ${byId("join").samples(chartPartitions)} random changes at that size (${byId("changes").samples(chartPartitions)} runs of 20 in the last panel; the StatefulSet scale-out and scale-down are one change each); names like ip-10-4-17-201, seed ${seed}. Tables: movement.md`,
  panels: scenarios.map((scenario) => {
    const at = (name: string | null) =>
      grid.sizes.flatMap((n) => {
        const cell = cells.find(
          (c) =>
            (name === null || c.configuration === name) &&
            c.n === n &&
            c.partitions === chartPartitions &&
            c.replicas === 1,
        );
        if (cell === undefined) return [];
        const result = cell.scenarios[scenario.id];
        return [[n, name === null ? result.optimum : result.primaries] as [number, number]];
      });
    return {
      title:
        scenario.id === "changes" ? "20 random joins and leaves (per change)" : scenario.title.replace(/ \(.*\)$/, ""),
      series: configurations.map((c) => ({ name: c.name, points: at(c.name) })),
      optimum: at(null),
    };
  }),
  legend: configurations.map((c) => ({ name: c.name, about: c.about })),
});

if (printOnly) {
  process.stdout.write(report);
  process.stderr.write(`ran in ${seconds.toFixed(0)} s, nothing written\n`);
} else {
  writeFileSync(new URL("results/movement.md", import.meta.url), report);
  writeFileSync(new URL("results/movement.svg", import.meta.url), chart);
  process.stderr.write(`wrote bench/results/movement.md and movement.svg in ${seconds.toFixed(0)} s\n`);
}
