import type { SlotLists } from "./documents.ts";

/** A (partition, rank) pair as one number: partition·256 + rank (ranks stay below 256). */
export type Slot = number;

export const slotOf = (partition: number, rank: number): Slot => partition * 256 + rank;
export const partitionOf = (slot: Slot): number => Math.floor(slot / 256);
export const rankOf = (slot: Slot): number => slot % 256;

/** Slots as the contract's per-rank partition lists, sorted. */
export function toLists(slots: Iterable<Slot>): SlotLists {
  const lists: SlotLists = {};
  for (const slot of slots) {
    const rank = String(rankOf(slot));
    const list = lists[rank] ?? [];
    list.push(partitionOf(slot));
    lists[rank] = list;
  }
  for (const list of Object.values(lists)) list.sort((a, b) => a - b);
  return lists;
}

export function fromLists(lists: SlotLists): Set<Slot> {
  const slots = new Set<Slot>();
  for (const [rank, partitions] of Object.entries(lists))
    for (const p of partitions) slots.add(slotOf(p, Number(rank)));
  return slots;
}
