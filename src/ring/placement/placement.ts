/**
 * A placement assigns every partition an ordered list of distinct members.
 *
 * It must be a pure function of its arguments: every process that calls it
 * with the same members gets the same table, without talking to the others.
 * That is what lets a fleet of proxies agree on owners (and compare a
 * checksum) with no coordination.
 *
 * `members` is in ring order (see ../order.ts) and has no duplicates. The
 * result has `partitions * replicas` entries: entry `p * replicas + r` is the
 * index into `members` of replica rank `r` of partition `p`. The caller passes
 * `replicas <= members.length`, so the members of one partition's row are
 * always distinct. `options` carries the ring settings a placement may read
 * (placements that take none ignore it).
 */
export type Placement = (
  members: readonly string[],
  partitions: number,
  replicas: number,
  options?: Readonly<PlacementOptions>,
) => Uint32Array;

/**
 * How far above the mean one member's load may go under `balanced`: a factor
 * f ≥ 1 (cap ⌊f·P/n⌋), or `auto`, a cap that grows with the square root of
 * the mean load, ⌊P/n + √(P/n)⌋. Either way the cap is at least ⌈P/n⌉.
 */
export type BalanceFactor = number | "auto";

/** The ring settings placements read. */
export interface PlacementOptions {
  /** `balanced`: the load cap (default 1.25). */
  balanceFactor: BalanceFactor;
  /** `vnodes`: virtual nodes a member (default 150). */
  vnodes: number;
}

export function defaultPlacementOptions(): PlacementOptions {
  return { balanceFactor: 1.25, vnodes: 150 };
}
