/**
 * Rendezvous (highest random weight) hashing, Thaler and Ravishankar (1998):
 * every member scores every partition, the highest score is the primary and
 * the next R − 1 are the replicas. Only the partitions a change touches move,
 * at the price of n scores per partition.
 */
import type { Placement } from "../../src/ring/placement/placement.ts";
import { mix32, partitionPoint, pointOf } from "../../src/ring/placement/points.ts";
import type { ComparisonPlacement } from "../movement/configuration.ts";

export const rendezvous: Placement = (members, partitions, replicas) => {
  const n = members.length;
  const seeds = members.map(pointOf);
  // Equal scores (rare in 32 bits) go to the lesser name, so the table does
  // not depend on the order members are given in.
  const beats = (a: number, scoreA: number, b: number, scoreB: number) =>
    scoreA !== scoreB ? scoreA > scoreB : (members[a] as string) < (members[b] as string);
  const table = new Uint32Array(partitions * replicas);
  const top = new Uint32Array(replicas);
  const topScore = new Float64Array(replicas);
  for (let p = 0; p < partitions; p++) {
    const point = partitionPoint(p);
    let kept = 0;
    for (let m = 0; m < n; m++) {
      const score = mix32((seeds[m] as number) ^ point);
      // Insertion into the sorted top-R list.
      let at = kept;
      while (at > 0 && beats(m, score, top[at - 1] as number, topScore[at - 1] as number)) at--;
      if (at >= replicas) continue;
      for (let i = Math.min(kept, replicas - 1); i > at; i--) {
        top[i] = top[i - 1] as number;
        topScore[i] = topScore[i - 1] as number;
      }
      top[at] = m;
      topScore[at] = score;
      if (kept < replicas) kept++;
    }
    table.set(top, p * replicas);
  }
  return table;
};

export const comparison: ComparisonPlacement = {
  name: "rendezvous",
  about: "highest random weight: top R of n scores",
  order: "lexical",
  placement: rendezvous,
};
