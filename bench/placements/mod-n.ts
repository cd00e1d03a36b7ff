/**
 * mod-N: partition p belongs to member p mod n of the sorted members, the
 * replicas to the next ones along, as libring walks its ring. This is how
 * the Go `cluster` package on top of memberlist designates a datum's node
 * (datum id mod node count): nearly every partition moves on any change.
 */
import type { Placement } from "../../src/ring/placement/placement.ts";
import type { ComparisonPlacement } from "../movement/configuration.ts";

export const modN: Placement = (members, partitions, replicas) => {
  const n = members.length;
  const table = new Uint32Array(partitions * replicas);
  for (let p = 0; p < partitions; p++) {
    for (let r = 0; r < replicas; r++) table[p * replicas + r] = (p + r) % n;
  }
  return table;
};

export const comparison: ComparisonPlacement = {
  name: "mod-N",
  about: "partition mod n (Go cluster package)",
  order: "lexical",
  placement: modN,
};
