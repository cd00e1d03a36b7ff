/** Renders the grid's cells as the Markdown results page. Pure: cells in, text out. */
import { markdownTable } from "../stats.ts";
import type { Configuration } from "./configurations.ts";
import type { Cell, Grid } from "./run.ts";
import { type Scenario, type ScenarioId, scenarios, seed } from "./scenarios.ts";

export interface ReportContext {
  grid: Grid;
  configurations: Configuration[];
  /** Placements registered in ringroute whose table ignores member order (one column each). */
  orderFree: string[];
  machine: string;
  seconds: number;
  /** The command that ran, as the report names it (`npm run bench:movement`, with its flags). */
  command: string;
  /** True when the report goes to bench/results/; a printed report says so instead of "Written by". */
  written: boolean;
}

export function renderReport(cells: Cell[], context: ReportContext): string {
  const { grid, configurations } = context;
  const names = configurations.map((c) => c.name);
  const find = (name: string, n: number, partitions: number, replicas: number) =>
    cells.find((c) => c.configuration === name && c.n === n && c.partitions === partitions && c.replicas === replicas);
  const rowsOf = (partitions: number, cellText: (cell: Cell) => string, lead?: (n: number, r: number) => string[]) =>
    grid.sizes.flatMap((n) =>
      grid.replicas.map((replicas) => [
        `${n}`,
        `${replicas}`,
        ...(lead ? lead(n, replicas) : []),
        ...names.map((name) => {
          const cell = find(name, n, partitions, replicas);
          return cell ? cellText(cell) + (cell.capped ? " †" : "") : "–";
        }),
      ]),
    );

  const out: string[] = [];
  /** One "### P = …" table per partition count: n, R, the `lead` columns, then one column a configuration. */
  const tablePerPartitionCount = (
    cellText: (cell: Cell) => string,
    lead?: { headers: string[]; cells: (n: number, r: number, partitions: number) => string[] },
  ) => {
    for (const partitions of grid.partitions) {
      out.push("", `### P = ${partitions}`, "");
      out.push(
        markdownTable(
          ["n", "R", ...(lead?.headers ?? []), ...names],
          rowsOf(partitions, cellText, lead && ((n, r) => lead.cells(n, r, partitions))),
        ),
      );
    }
  };

  out.push("# Partition movement, balance and cost of every placement");
  out.push("");
  out.push(
    `${context.written ? "Written" : "Printed"} by \`${context.command}\` in ${context.seconds.toFixed(0)} s ` +
      `(seed ${seed}; ${context.machine}). ` +
      "Movement and balance are the same on every run; build and lookup times are this machine's.",
  );
  out.push("");
  if (context.written) {
    out.push("![Partitions moved against cluster size, one panel per scenario](movement.svg)");
    out.push("");
  }
  out.push(...renderSummary(cells, context));
  out.push(...renderAdvice(cells, context));
  out.push("## Configurations");
  out.push("");
  for (const c of configurations) out.push(`- **${c.name}**: ${c.about}.`);
  if (context.orderFree.length > 0) {
    out.push("");
    out.push(
      `${context.orderFree.join(", ")}: built under lexical and natural order on member sets where the orders differ, ` +
        "the owners of every slot were the same, so one column stands for both.",
    );
  }
  out.push("");
  out.push("## How to read the tables");
  out.push("");
  out.push(
    "- **moved**: primaries (rank-0 owners) that changed, as a share of all P partitions, mean per change; " +
      "**×** is that against the optimum (a join must move 1/(n+1), a leave or a replacement 1/n; " +
      "for 20 changes the sum of each step's optimum). **slots** (R = 3): (partition, rank) slots whose owner changed, " +
      "as a share of all P·R slots.",
  );
  out.push(
    "- **balance**: partitions per member, busiest over mean (1.00 is perfect) / coefficient of variation; " +
      "for R = 3 also of all owner slots per member. Mean over the rings of n and n ± 1 members built for join, leave and replace.",
  );
  out.push(
    "- **build**: sorting n members and running the bare placement over them, median ms; " +
      "**lookup**: `ownersOf(key)` for 16-byte keys, ns, fastest of 12 rounds " +
      "(for the comparison placements, the same table read behind the same FNV-1a partitioner).",
  );
  const sampleText = grid.partitions
    .map(
      (p) =>
        `P = ${p}: ${scenarios.map((s) => `${s.id} ${s.samples(p)}${s.id === "changes" ? " runs" : ""}`).join(", ")}`,
    )
    .join("; ");
  out.push(`- Samples per cell (the same names and changes for every configuration): ${sampleText}.`);
  if (cells.some((c) => c.capped)) {
    out.push("- † a configuration whose builds were slow there ran fewer samples to stay within the time budget.");
  }

  for (const scenario of scenarios) {
    out.push("");
    out.push(`## ${capitalize(scenario.title)}`);
    tablePerPartitionCount((cell) => movedText(cell, scenario), {
      headers: ["optimum"],
      cells: (n, r, partitions) => [optimumText(cells, scenario, n, partitions, r)],
    });
  }

  out.push("");
  out.push("## Balance: busiest member / mean, and coefficient of variation");
  out.push("");
  out.push("Primaries per member; for R = 3, after the ·, all owner slots per member.");
  tablePerPartitionCount(balanceText);

  out.push("");
  out.push("## Build time (ms) and lookup (ns)");
  tablePerPartitionCount((cell) => `${cell.buildMs.toPrecision(3)} ms / ${cell.lookupNs.toFixed(0)} ns`);
  out.push("");
  return out.join("\n");
}

export function pct(fraction: number): string {
  const value = fraction * 100;
  if (value === 0) return "0%";
  return `${value >= 10 ? value.toFixed(1) : value >= 1 ? value.toFixed(2) : value.toFixed(3)}%`;
}

function movedText(cell: Cell, scenario: Scenario): string {
  const result = cell.scenarios[scenario.id];
  const text = `${pct(result.primaries)} ×${(result.primaries / result.optimum).toFixed(2)}`;
  return cell.replicas > 1 ? `${text} · ${pct(result.slots)}` : text;
}

function optimumText(cells: Cell[], scenario: Scenario, n: number, partitions: number, replicas: number): string {
  const cell = cells.find((c) => c.n === n && c.partitions === partitions && c.replicas === replicas);
  return cell ? pct(cell.scenarios[scenario.id].optimum) : "–";
}

function balanceText(cell: Cell): string {
  const { primaries, slots } = cell.balance;
  const text = `${primaries.maxOverMean.toFixed(2)} / ${primaries.cv.toFixed(3)}`;
  return cell.replicas > 1 ? `${text} · ${slots.maxOverMean.toFixed(2)} / ${slots.cv.toFixed(3)}` : text;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Which sizes the summary shows: the run's smallest and largest (one, when the run has one size). */
export function summarySizes(grid: Grid): { small: number; large: number } {
  return { small: Math.min(...grid.sizes), large: Math.max(...grid.sizes) };
}

/** Partition counts the summary and the advice read: all but 512 (few a member), unless 512 is all the run has. */
function summaryPartitions(grid: Grid): number[] {
  const larger = grid.partitions.filter((p) => p !== 512);
  return larger.length > 0 ? larger : grid.partitions;
}

type SummaryWhat = ScenarioId | "balance" | "build";

/**
 * The key numbers at R = 1 on one table per P, one row per configuration:
 * what the README quotes. The columns follow the run's member counts: a join
 * at the smallest n, then everything at the largest.
 */
export function renderSummary(cells: Cell[], context: ReportContext): string[] {
  const { small, large } = summarySizes(context.grid);
  const out: string[] = ["## Summary", ""];
  const columns: [string, SummaryWhat, number][] = [
    ...(small === large ? [] : [[`join, n=${small}`, "join", small] as [string, SummaryWhat, number]]),
    [`join, n=${large}`, "join", large],
    [`leave, n=${large}`, "leave", large],
    [`replace, n=${large}`, "replace", large],
    [`StatefulSet +1, n=${large}`, "scale-out", large],
    [`StatefulSet −1, n=${large}`, "scale-in", large],
    [`20 changes, n=${large}`, "changes", large],
    [`busiest/mean, n=${large}`, "balance", large],
    [`build ms, n=${large}`, "build", large],
  ];
  out.push(
    `Primaries moved (share of P, × the optimum) at R = 1; balance and build time for n = ${large}. ` +
      "Every size, R = 3 and the replica slots are in the tables below.",
  );
  for (const partitions of summaryPartitions(context.grid)) {
    out.push("", `### P = ${partitions}, R = 1`, "");
    const rows = context.configurations.map((c) => [
      c.name,
      ...columns.map(([, what, n]) => {
        const cell = cells.find(
          (x) => x.configuration === c.name && x.n === n && x.partitions === partitions && x.replicas === 1,
        );
        if (cell === undefined) return "–";
        if (what === "balance") return cell.balance.primaries.maxOverMean.toFixed(2);
        if (what === "build") return cell.buildMs.toPrecision(3);
        const result = cell.scenarios[what];
        return `${pct(result.primaries)} ×${(result.primaries / result.optimum).toFixed(1)}`;
      }),
    ]);
    out.push(markdownTable(["configuration", ...columns.map(([label]) => label)], rows));
  }
  out.push("");
  return out;
}

/** The situations the advice weighs, each a scenario of the run. */
const situations: { id: ScenarioId; label: string }[] = [
  { id: "leave", label: "a member fails or leaves" },
  { id: "join", label: "scale-out with any names" },
  { id: "replace", label: "a member replaced under a new name" },
  { id: "scale-out", label: "StatefulSet scale-out" },
  { id: "scale-in", label: "StatefulSet scale-down" },
];

/**
 * A short recommendation derived from the results: at the largest P and n
 * of the run, R = 1, among the placements the proxy runs, which one moves
 * least in each situation, which one is never far from the best (the
 * general choice), when jump is the better one, and what libring interop
 * costs. Pure: cells in, lines out.
 */
export function renderAdvice(cells: Cell[], context: ReportContext): string[] {
  const { large } = summarySizes(context.grid);
  const partitions = Math.max(...summaryPartitions(context.grid));
  const own = context.configurations.filter((c) => c.kind === "ringroute").map((c) => c.name);
  const at = (name: string) =>
    cells.find((c) => c.configuration === name && c.n === large && c.partitions === partitions && c.replicas === 1);
  const ratio = (name: string, id: ScenarioId) => {
    const result = at(name)?.scenarios[id];
    return result === undefined ? Number.NaN : result.primaries / result.optimum;
  };
  const present = own.filter((name) => at(name) !== undefined);
  if (present.length === 0) return [];
  const x = (value: number) => `×${value.toFixed(value >= 10 ? 0 : 1)}`;
  const best = (id: ScenarioId) => Math.min(...present.map((name) => ratio(name, id)));
  // The general choice: of the placements within 1.25× the best in every situation (or else the
  // closest), the one with the most even load: movement near the optimum is cheap, hot members are not.
  const worst = (name: string) => Math.max(...situations.map((s) => ratio(name, s.id) / best(s.id)));
  const busiest = (name: string) => at(name)?.balance.primaries.maxOverMean ?? Number.POSITIVE_INFINITY;
  const closest = Math.min(...present.map(worst));
  const near = present.filter((name) => worst(name) <= Math.max(1.25, closest * 1.1));
  const general = [...near].sort((a, b) => busiest(a) - busiest(b) || worst(a) - worst(b))[0] as string;
  const out = ["## Recommendation", ""];
  out.push(
    `From this run at P = ${partitions}, n = ${large}, R = 1 (primaries moved × the optimum; ` +
      `the placements the proxy runs: ${present.join(", ")}):`,
  );
  out.push("");
  for (const situation of situations) {
    const winners = present.filter((name) => ratio(name, situation.id) <= best(situation.id) * 1.1);
    const others = present
      .filter((name) => !winners.includes(name))
      .map((name) => `${name} ${x(ratio(name, situation.id))}`);
    out.push(
      `- **${capitalize(situation.label)}:** ${winners.map((name) => `${name} ${x(ratio(name, situation.id))}`).join(", ")}` +
        (others.length > 0 ? `; against ${others.join(", ")}.` : "."),
    );
  }
  out.push(
    `- **In general: \`${general}\`**: within ${worst(general).toFixed(2)}× the least-moving placement in each of these situations, ` +
      `with the busiest member at ${busiest(general).toFixed(2)}× the mean` +
      (near.length > 1
        ? ` (${near
            .filter((name) => name !== general)
            .map((name) => `${name}: ${busiest(name).toFixed(2)}×`)
            .join(", ")}).`
        : "."),
  );
  const natural = present.find((name) => name === "jump+natural");
  if (natural !== undefined) {
    const endOnly = ["scale-out", "scale-in"] as const;
    const good = endOnly.every((id) => ratio(natural, id) <= best(id) * 1.1);
    out.push(
      good
        ? `- **\`jump\` with \`order: natural\`** only for a StatefulSet that scales at its end and whose pods keep their names: ` +
            `${x(ratio(natural, "scale-out"))} on scale-out, ${x(ratio(natural, "scale-in"))} on scale-down, ` +
            `but ${x(ratio(natural, "leave"))} when a pod in the middle fails.`
        : `- **\`jump\` with \`order: natural\`** moved ${x(ratio(natural, "scale-out"))} on a StatefulSet scale-out here, no better than the others.`,
    );
  }
  const libring = present.find((name) => name === "jump+lexical");
  if (libring !== undefined) {
    out.push(
      `- **Beside libring:** \`compat: libring\` (jump, lexical, fnv1a64) is the only setting that routes as libring does; ` +
        `it moves ${x(ratio(libring, "leave"))} when a member fails and ${x(ratio(libring, "join"))} on a join.`,
    );
  }
  out.push("");
  return out;
}
