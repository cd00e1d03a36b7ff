/**
 * Membership changes the benchmark replays. Each trial is a starting
 * membership and the memberships after each change, with the least movement
 * any placement could get away with at that step (as a fraction of all
 * partitions): a join must hand the newcomer its share 1/(n+1), a leave and a
 * replacement must rehome the departed member's share 1/n.
 *
 * Names look like cloud hostnames (ip-10-4-17-201), so a newcomer sorts at a
 * random place in both lexical and natural order; only the StatefulSet
 * scenario uses ordinal names (web-0, web-1, …).
 */
import { seededRandom } from "../stats.ts";

export interface Step {
  members: readonly string[];
  /** The optimal fraction of primaries to move at this step. */
  optimum: number;
}

export interface Trial {
  /** Shared between trials of one scenario where the start is the same, so a runner can reuse its ring. */
  start: readonly string[];
  steps: Step[];
}

export type ScenarioId = "join" | "leave" | "replace" | "scale-out" | "scale-in" | "changes";

export interface Scenario {
  id: ScenarioId;
  /** What happens, for headings and the chart. */
  title: string;
  /** Trials over a cluster of n, `count` of them unless the scenario is deterministic. */
  trials(n: number, count: number): Trial[];
  /** Trials worth running at P partitions: fewer where each build is big. */
  samples(partitions: number): number;
}

export const seed = 5;

/**
 * Samples of a one-change scenario. Jump's movement on a random join is
 * spread evenly from 0 to 100% (it depends on where the newcomer sorts), so a
 * mean needs dozens; fewer at P = 65536, where each build is big.
 */
const oneChangeSamples = (partitions: number) => (partitions <= 512 ? 64 : partitions <= 2048 ? 48 : 12);

export const scenarios: Scenario[] = [
  {
    id: "join",
    title: "one random join",
    samples: oneChangeSamples,
    trials: (n, count) => {
      const { base, fresh } = cluster(n, 1);
      return repeat(count, () => ({ start: base, steps: [{ members: [...base, fresh()], optimum: 1 / (n + 1) }] }));
    },
  },
  {
    id: "leave",
    title: "one random leave",
    samples: oneChangeSamples,
    trials: (n, count) => {
      const { base, pick } = cluster(n, 2);
      return repeat(count, () => {
        const gone = pick(base);
        return { start: base, steps: [{ members: base.filter((m) => m !== gone), optimum: 1 / n }] };
      });
    },
  },
  {
    id: "replace",
    title: "one member replaced",
    samples: oneChangeSamples,
    trials: (n, count) => {
      const { base, pick, fresh } = cluster(n, 3);
      return repeat(count, () => {
        const gone = pick(base);
        return { start: base, steps: [{ members: [...base.filter((m) => m !== gone), fresh()], optimum: 1 / n }] };
      });
    },
  },
  {
    id: "scale-out",
    title: "StatefulSet scale-out (web-0 … web-(n−1) gain web-n)",
    samples: () => 1,
    trials: (n) => {
      const start = Array.from({ length: n }, (_, i) => `web-${i}`);
      return [{ start, steps: [{ members: [...start, `web-${n}`], optimum: 1 / (n + 1) }] }];
    },
  },
  {
    id: "scale-in",
    title: "StatefulSet scale-down (web-0 … web-n lose web-n)",
    samples: () => 1,
    trials: (n) => {
      const start = Array.from({ length: n + 1 }, (_, i) => `web-${i}`);
      return [{ start, steps: [{ members: start.slice(0, n), optimum: 1 / (n + 1) }] }];
    },
  },
  {
    id: "changes",
    title: "a run of 20 random joins and leaves",
    samples: (partitions) => (partitions <= 512 ? 8 : partitions <= 2048 ? 4 : 1),
    trials: (n, count) => {
      const { base, pick, fresh, random } = cluster(n, 4);
      return repeat(count, () => {
        let members = base;
        const steps: Step[] = [];
        for (let i = 0; i < 20; i++) {
          const size = members.length;
          // A random walk that never drops below two members.
          if (size <= 2 || random() < 0.5) {
            members = [...members, fresh()];
            steps.push({ members, optimum: 1 / (size + 1) });
          } else {
            const gone = pick(members);
            members = members.filter((m) => m !== gone);
            steps.push({ members, optimum: 1 / size });
          }
        }
        return { start: base, steps };
      });
    },
  },
];

/** n distinct hostnames and a source of further ones, from a seed per (n, scenario). */
function cluster(n: number, scenario: number) {
  const random = seededRandom(seed * 1_000_003 + n * 101 + scenario);
  const used = new Set<string>();
  const fresh = (): string => {
    for (;;) {
      const octet = () => Math.floor(random() * 256);
      const name = `ip-10-${octet()}-${octet()}-${octet()}`;
      if (!used.has(name)) {
        used.add(name);
        return name;
      }
    }
  };
  const pick = (members: readonly string[]): string => members[Math.floor(random() * members.length)] as string;
  const base: readonly string[] = Object.freeze(Array.from({ length: n }, fresh));
  return { base, fresh, pick, random };
}

function repeat<T>(count: number, make: () => T): T[] {
  return Array.from({ length: count }, make);
}
