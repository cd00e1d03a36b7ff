import { Ring } from "../ring/ring.ts";
import { type Slot, slotOf } from "./slots.ts";

/**
 * The ring to route by while a version's hand-offs run: each (partition,
 * rank) keeps its owner in `base` (what the proxy routed by when the version
 * arrived) until `settled` says the target's owner has it ready. Slots whose
 * old owner is gone (`alive` false), or that had none, go to the new owner
 * at once. Pure: the same inputs give the same table.
 */
export function mixRings(
  base: Ring | undefined,
  target: Ring,
  settled: (slot: Slot, member: string) => boolean,
  alive: (member: string) => boolean,
): { ring: Ring; pending: Slot[] } {
  const { partitions } = target.config;
  const pending: Slot[] = [];
  const rows: string[][] = new Array(partitions);
  const names = new Set(target.members);
  for (let p = 0; p < partitions; p++) {
    const row: string[] = [];
    for (let r = 0; r < target.ownerCount; r++) {
      const now = target.owner(p, r) as string;
      const was = base?.owner(p, r);
      if (was === undefined || was === now || !alive(was) || settled(slotOf(p, r), now)) {
        if (!row.includes(now)) row.push(now);
      } else {
        pending.push(slotOf(p, r));
        if (!row.includes(was)) row.push(was);
        names.add(was);
      }
    }
    rows[p] = row;
  }
  if (pending.length === 0) return { ring: target, pending };
  // Old owners kept for some slots join the member list; every row is filled
  // to the mixed ring's owner count from the target's preference list, then
  // from the kept members, without repeating a member.
  const members = [...names].sort();
  const ownerCount = Math.min(target.config.replicas, members.length);
  const index = new Map(members.map((m, i) => [m, i]));
  const table = new Uint32Array(partitions * ownerCount);
  for (let p = 0; p < partitions; p++) {
    const row = rows[p] as string[];
    if (row.length < ownerCount) {
      for (const m of [...target.preferenceListOfPartition(p), ...members]) {
        if (row.length >= ownerCount) break;
        if (!row.includes(m)) row.push(m);
      }
    }
    for (let r = 0; r < ownerCount; r++) table[p * ownerCount + r] = index.get(row[r] as string) as number;
  }
  return { ring: Ring.fromTable(members, target.config, table), pending };
}
