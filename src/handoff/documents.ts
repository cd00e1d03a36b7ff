/**
 * The hand-off documents as the protocol publishes them: the leader's ring
 * versions and each member's progress. Plain data, no store: the etcd source
 * reads them, the routing rule and the runner take them as input.
 */
import type { RingConfig } from "../ring/ring.ts";

/** `versions/<n>`: a membership the leader published. */
export interface VersionDoc {
  version: number;
  /** The ring's members, sorted. */
  members: string[];
  /** The previous version's members: where each moved partition comes from. */
  previous: string[];
  ring: RingConfig;
  checksum: string;
}

/** Per rank (as a string, "0" = primary), partitions. */
export type SlotLists = Record<string, number[]>;

/** `handoff/<name>`: where a member stands in the hand-offs of `version`. */
export interface HandoffDoc {
  version: number;
  /** Slots the member owns in `version` and holds ready. */
  ready: SlotLists;
  /**
   * Slots the member let go (released, or never held) and has not taken
   * back, by the version whose hand-off let them go: a new owner in version
   * n waits for its slot under a version ≥ n.
   */
  released: Record<string, SlotLists>;
  /**
   * The first version this registration took up. It holds nothing from
   * before (an earlier life under the name was fenced or died), so a release
   * of an earlier version is owed by nobody: the new life never marks one.
   * Absent from members that predate it.
   */
  since?: number;
}
