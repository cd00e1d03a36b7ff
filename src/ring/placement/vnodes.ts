import { defaultPlacementOptions, type Placement } from "./placement.ts";
import { partitionPoint, pointOf } from "./points.ts";

/**
 * A consistent-hash ring with `vnodes` virtual nodes a member (150 is the
 * default of Maggie's and Cloister's HashRing; David Karger et al., 1997):
 * member m sits at the points of "m#0" … "m#149", a partition belongs to the
 * first point clockwise from its own, and its replicas to the next distinct
 * members clockwise. The points hash the name only, so owners never depend on
 * the member order.
 */
export const vnodes: Placement = (members, partitions, replicas, options) => {
  const virtualNodes = options?.vnodes ?? defaultPlacementOptions().vnodes;
  const count = members.length * virtualNodes;
  if (count > 2 ** 21)
    throw new RangeError(`a ${virtualNodes}-vnode ring packs at most ${(2 ** 21 / virtualNodes) | 0} members`);
  // Sort vnodes by point as one packed number (point · 2²¹ + vnode), a plain
  // numeric sort; then put runs of equal points (rare in 32 bits) in member
  // name order, so the ring does not depend on the order members come in.
  const packed = new Float64Array(count);
  for (let v = 0; v < count; v++) {
    packed[v] = pointOf(`${members[Math.floor(v / virtualNodes)]}#${v % virtualNodes}`) * 2 ** 21 + v;
  }
  packed.sort();
  const points = new Float64Array(count);
  const owners = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const value = packed[i] as number;
    points[i] = Math.floor(value / 2 ** 21);
    owners[i] = Math.floor((value % 2 ** 21) / virtualNodes);
  }
  for (let i = 1; i < count; i++) {
    for (let j = i; j > 0 && points[j] === points[j - 1]; j--) {
      const [a, b] = [owners[j - 1] as number, owners[j] as number];
      if ((members[a] as string) <= (members[b] as string)) break;
      owners[j - 1] = b;
      owners[j] = a;
    }
  }

  const table = new Uint32Array(partitions * replicas);
  for (let p = 0; p < partitions; p++) {
    // First vnode at or after the partition's point, wrapping past the top.
    const point = partitionPoint(p);
    let lo = 0;
    let hi = count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < point) lo = mid + 1;
      else hi = mid;
    }
    let found = 0;
    for (let step = 0; found < replicas; step++) {
      const member = owners[(lo + step) % count] as number;
      let seen = false;
      for (let r = 0; r < found; r++) if (table[p * replicas + r] === member) seen = true;
      if (!seen) table[p * replicas + found++] = member;
    }
  }
  return table;
};
