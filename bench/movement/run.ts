/**
 * Runs the grid: for every cluster size n, partition count P, replica count
 * R and configuration, replays each scenario's trials and measures movement,
 * balance, build time and lookup cost. The same trials (same names, same
 * changes) go to every configuration, so columns compare like with like.
 */
import { median, seededRandom } from "../stats.ts";
import type { Configuration } from "./configurations.ts";
import { type Balance, balances, moved } from "./metrics.ts";
import { type ScenarioId, scenarios, type Trial } from "./scenarios.ts";
import type { Assignment } from "./table-ring.ts";

export interface Grid {
  sizes: number[];
  partitions: number[];
  replicas: number[];
}

export const fullGrid: Grid = { sizes: [3, 5, 10, 30, 100, 300], partitions: [512, 2048, 65536], replicas: [1, 3] };

export interface ScenarioResult {
  /** Trials replayed (each of one change, or of 20 for "changes"). */
  samples: number;
  /** Mean primaries moved per change, as a fraction of P. */
  primaries: number;
  /** Mean optimal primaries per change, same unit; primaries / optimum is the ratio to the optimum. */
  optimum: number;
  /** Mean (partition, rank) slots moved per change, as a fraction of all P·R slots. */
  slots: number;
}

export interface Cell {
  configuration: string;
  n: number;
  partitions: number;
  replicas: number;
  scenarios: Record<ScenarioId, ScenarioResult>;
  /** Mean over the rings of n ± 1 members built for join, leave and replace. */
  balance: { primaries: Balance; slots: Balance };
  /** Median ms of sorting n members and running the bare placement over them. */
  buildMs: number;
  /** Fastest round's ns per `ownersOf(key)` for 16-byte keys. */
  lookupNs: number;
  /** True when the configuration's builds were slow enough to cut the sample counts. */
  capped: boolean;
}

/** Builds one cell may spend at most, so a slow placement cannot stretch the run past a few minutes. */
const cellBudgetMs = 20_000;

export function runGrid(grid: Grid, configurations: Configuration[], log: (line: string) => void): Cell[] {
  const cells: Cell[] = [];
  const keys = lookupKeys();
  const started = Date.now();
  for (const n of grid.sizes) {
    const most = Math.max(...grid.partitions.map((p) => Math.max(...scenarios.map((s) => s.samples(p)))));
    const trials = new Map(scenarios.map((s) => [s.id, s.trials(n, most)]));
    for (const partitions of grid.partitions) {
      for (const replicas of grid.replicas) {
        for (const configuration of configurations) {
          cells.push(runCell(configuration, n, partitions, replicas, trials, keys));
        }
      }
      log(`n=${n} P=${partitions} done (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
  }
  return cells;
}

function runCell(
  configuration: Configuration,
  n: number,
  partitions: number,
  replicas: number,
  trials: Map<ScenarioId, Trial[]>,
  keys: string[],
): Cell {
  const rings = new Map<readonly string[], Assignment>();
  const build = (members: readonly string[]) => configuration.build(members, partitions, replicas);
  const startOf = (trial: Trial) => {
    let ring = rings.get(trial.start);
    if (ring === undefined) {
      ring = build(trial.start);
      rings.set(trial.start, ring);
    }
    return ring;
  };

  // One timed build decides whether this configuration needs its samples cut here.
  const firstTrial = trials.get("join")?.[0] as Trial;
  const timedAt = process.hrtime.bigint();
  const base = startOf(firstTrial);
  const oneBuildMs = Number(process.hrtime.bigint() - timedAt) / 1e6;
  const planned = (s: (typeof scenarios)[number]) => s.samples(partitions) * (trials.get(s.id)?.[0]?.steps.length ?? 1);
  const plannedBuilds = scenarios.reduce((sum, s) => sum + planned(s), 0);
  const scale = Math.min(1, cellBudgetMs / (plannedBuilds * Math.max(oneBuildMs, 1e-3)));

  const balanceSamples: ReturnType<typeof balances>[] = [balances(base)];
  const results = {} as Record<ScenarioId, ScenarioResult>;
  for (const scenario of scenarios) {
    const count = Math.max(1, Math.floor(scenario.samples(partitions) * scale));
    const chosen = (trials.get(scenario.id) ?? []).slice(0, count);
    let primaries = 0;
    let optimum = 0;
    let slots = 0;
    for (const trial of chosen) {
      let before = startOf(trial);
      for (const step of trial.steps) {
        const after = build(step.members);
        const m = moved(before, after);
        primaries += m.primaries;
        slots += m.replicaSlots / before.ownerCount;
        optimum += step.optimum * partitions;
        if (scenario.id === "join" || scenario.id === "leave" || scenario.id === "replace") {
          balanceSamples.push(balances(after));
        }
        before = after;
      }
    }
    // Per change, so a run of 20 reads on the same scale as a single change.
    const per = chosen.reduce((sum, trial) => sum + trial.steps.length, 0) * partitions;
    results[scenario.id] = {
      samples: chosen.length,
      primaries: primaries / per,
      optimum: optimum / per,
      slots: slots / per,
    };
  }

  return {
    configuration: configuration.name,
    n,
    partitions,
    replicas,
    scenarios: results,
    balance: {
      primaries: meanBalance(balanceSamples.map((b) => b.primaries)),
      slots: meanBalance(balanceSamples.map((b) => b.slots)),
    },
    buildMs: timeBuild(configuration, firstTrial.start, partitions, replicas),
    lookupNs: timeLookup(base, keys),
    capped: scale < 1,
  };
}

function meanBalance(samples: Balance[]): Balance {
  const mean = (f: (b: Balance) => number) => samples.reduce((a, b) => a + f(b), 0) / samples.length;
  return { maxOverMean: mean((b) => b.maxOverMean), cv: mean((b) => b.cv) };
}

/** Median of up to 9 builds, stopping once 200 ms are spent (a slow placement gets few). */
function timeBuild(configuration: Configuration, members: readonly string[], partitions: number, replicas: number) {
  const samples: number[] = [];
  let spent = 0;
  while (samples.length < 9 && (spent < 200 || samples.length < 1)) {
    const start = process.hrtime.bigint();
    configuration.table(members, partitions, replicas);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    samples.push(ms);
    spent += ms;
  }
  return median(samples);
}

/**
 * The fastest of 12 short rounds: a lookup is a table read of a few dozen ns,
 * and garbage collection of the previous cell's rings or a busy neighbour on
 * a shared machine only ever adds time, so the minimum is the stable figure.
 */
function timeLookup(ring: Assignment, keys: string[]): number {
  let sink = 0;
  let fastest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 12; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 4; i++) for (const key of keys) sink += ring.ownersOf(key).length;
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / (4 * keys.length));
  }
  if (sink === -1) console.log(sink); // keeps the loop's work observable to the JIT
  return fastest;
}

function lookupKeys(): string[] {
  const random = seededRandom(42);
  return Array.from({ length: 4096 }, () =>
    Array.from({ length: 16 }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join(""),
  );
}
