import { jump as jumpHash } from "../../hash/jump.ts";
import type { Placement } from "./placement.ts";

/**
 * libring's placement: the primary of partition p is jump(p, n) over the
 * sorted members, and replica r is the member r places further along,
 * wrapping around. Balance is jump's (binomial), movement depends on where a
 * joining member sorts.
 */
export const jump: Placement = (members, partitions, replicas) => {
  const n = members.length;
  const table = new Uint32Array(partitions * replicas);
  for (let p = 0; p < partitions; p++) {
    const primary = jumpHash(0, p, n);
    for (let r = 0; r < replicas; r++) {
      table[p * replicas + r] = (primary + r) % n;
    }
  }
  return table;
};
