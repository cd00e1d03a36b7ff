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
 * always distinct.
 */
export type Placement = (members: readonly string[], partitions: number, replicas: number) => Uint32Array;
