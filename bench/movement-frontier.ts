/**
 * The balance/movement frontier at P = 2048, n = 3..100: balanced at each
 * balance factor beside the other placements. Writes
 * bench/results/frontier.md and frontier.svg.
 *
 *   npm run bench:frontier              8 chains a setting, writes the results
 *   npm run bench:frontier -- --quick   2 chains, printed, nothing written
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { comparisonConfigurations, ringrouteConfigurations } from "./movement/configurations.ts";
import { balancedSettings, frontier, frontierChart, frontierTable, otherSettings } from "./movement/frontier.ts";

const quick = process.argv.includes("--quick");
const partitions = 2048;
const largest = 100;
const chains = quick ? 2 : 8;
const seed = 15;

const settings = [
  ...balancedSettings(),
  ...otherSettings([...ringrouteConfigurations(), ...(await comparisonConfigurations())]),
];
const started = Date.now();
const rows = frontier(settings, { partitions, largest, chains, seed }, (line) => process.stderr.write(`${line}\n`));
const seconds = (Date.now() - started) / 1000;
const machine = `Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"}`;

const report = [
  "# Balance against movement",
  "",
  `P = ${partitions}, R = 1. Each setting replays ${chains} chains of random memberships (the rings of the first 2, 3, …, ${largest + 1} of ${largest + 1} random hostnames, seed ${seed}): every step is a join read forwards and a leave read backwards. Movement is primaries moved as a multiple of the optimum (P/(n+1) for a join into n members, P/n for a leave from n), averaged over the chains at each n. Written by \`npm run bench:frontier\` in ${seconds.toFixed(0)} s on ${machine}.`,
  "",
  frontierTable(rows, largest),
  "",
].join("\n");

if (quick) {
  process.stdout.write(report);
} else {
  writeFileSync(new URL("results/frontier.md", import.meta.url), report);
  writeFileSync(
    new URL("results/frontier.svg", import.meta.url),
    frontierChart(rows, {
      title: "Balance against movement",
      subtitle: `P = ${partitions}, R = 1: busiest member at n = ${largest}, and partitions moved by a join or a leave`,
      footer: `${chains} chains of random joins and leaves a setting, n = 3..${largest}; table: frontier.md`,
    }),
  );
  process.stderr.write(`wrote bench/results/frontier.md and frontier.svg in ${seconds.toFixed(0)} s\n`);
}
