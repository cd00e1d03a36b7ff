/** Renders the grid's cells as the Markdown results page. Pure: cells in, text out. */
import { markdownTable } from "../stats.ts";
import type { Configuration } from "./configurations.ts";
import type { Cell, Grid } from "./run.ts";
import { type Scenario, scenarios, seed } from "./scenarios.ts";

export interface ReportContext {
  grid: Grid;
  configurations: Configuration[];
  /** Placements registered in ringroute whose table ignores member order (one column each). */
  orderFree: string[];
  machine: string;
  seconds: number;
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
    `Written by \`npm run bench:movement\` (seed ${seed}; ${context.machine}; ${context.seconds.toFixed(0)} s). ` +
      "Movement and balance are the same on every run; build and lookup times are this machine's.",
  );
  out.push("");
  out.push("![Partitions moved against cluster size, one panel per scenario](movement.svg)");
  out.push("");
  out.push(...renderSummary(cells, context));
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

/**
 * The key numbers at R = 1 on one table per P, one row per configuration:
 * what the README quotes. Sizes 10 and 100 stand for small and large.
 */
export function renderSummary(cells: Cell[], context: ReportContext): string[] {
  const out: string[] = ["## Summary", ""];
  const columns: [string, (typeof scenarios)[number]["id"] | "balance" | "build", number][] = [
    ["join, n=10", "join", 10],
    ["join, n=100", "join", 100],
    ["leave, n=100", "leave", 100],
    ["replace, n=100", "replace", 100],
    ["StatefulSet +1, n=100", "scale-out", 100],
    ["20 changes, n=100", "changes", 100],
    ["busiest/mean, n=100", "balance", 100],
    ["build ms, n=100", "build", 100],
  ];
  out.push(
    "Primaries moved (share of P, × the optimum) at R = 1; balance and build time for n = 100. " +
      "Every size, R = 3 and the replica slots are in the tables below.",
  );
  for (const partitions of context.grid.partitions.filter((p) => p !== 512)) {
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
