import type { Placement } from "./placement.ts";

/**
 * Partition p belongs to member p mod n of the sorted members, its replicas
 * to the next ones along. This is how the Go `cluster` package on top of
 * memberlist designates a datum's node (id mod node count), and libring's
 * `PartitionDistribution: Uniform`: perfectly even, but nearly every
 * partition moves on any change.
 */
export const modulo: Placement = (members, partitions, replicas) => {
  const n = members.length;
  const table = new Uint32Array(partitions * replicas);
  for (let p = 0; p < partitions; p++) {
    for (let r = 0; r < replicas; r++) table[p * replicas + r] = (p + r) % n;
  }
  return table;
};
