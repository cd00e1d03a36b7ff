import { type Movement, movement } from "../../src/ring/diff.ts";
import { Ring } from "../../src/ring/ring.ts";
import type { Assignment } from "./table-ring.ts";

/**
 * Primaries and (partition, rank) slots whose owner differs between two
 * assignments: diff.ts's `movement()` for two Rings, the same count over
 * owner rows for anything else.
 */
export function moved(before: Assignment, after: Assignment): Movement {
  if (before instanceof Ring && after instanceof Ring) return movement(before, after);
  const partitions = before.config.partitions;
  const ranks = Math.max(before.ownerCount, after.ownerCount);
  const result: Movement = { primaries: 0, replicaSlots: 0 };
  for (let p = 0; p < partitions; p++) {
    for (let r = 0; r < ranks; r++) {
      if (before.owner(p, r) !== after.owner(p, r)) {
        result.replicaSlots++;
        if (r === 0) result.primaries++;
      }
    }
  }
  return result;
}

/** How evenly a load spreads: the busiest member against the mean, and the coefficient of variation. */
export interface Balance {
  maxOverMean: number;
  cv: number;
}

export function balanceOf(counts: readonly number[]): Balance {
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const variance = counts.reduce((a, c) => a + (c - mean) ** 2, 0) / counts.length;
  return { maxOverMean: Math.max(...counts) / mean, cv: Math.sqrt(variance) / mean };
}

/** Balance of primaries per member, and of all owner slots (every rank) per member. */
export function balances(ring: Assignment): { primaries: Balance; slots: Balance } {
  const loads = [...ring.loads.values()];
  return {
    primaries: balanceOf(loads.map((l) => l[0] ?? 0)),
    slots: balanceOf(loads.map((l) => l.reduce((a, b) => a + b, 0))),
  };
}
