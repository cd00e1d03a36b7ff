/**
 * The routing rule of coordinated hand-offs: which member each (partition,
 * rank) goes to, decided from what the protocol published and nothing else.
 * Two proxies that read the same store revision compute the same table,
 * however long either has run: no input is a proxy's own history.
 */
import { Ring } from "../ring/ring.ts";
import type { HandoffDoc, VersionDoc } from "./documents.ts";
import { fromLists, type Slot, slotOf } from "./slots.ts";
import { RoutingTable, type SlotState } from "./table.ts";

/** A member's hand-off document and the registration (lease) it was written under. */
export interface PublishedProgress {
  doc: HandoffDoc;
  lease: string;
}

/** What the rule reads: everything published under the cluster's prefix that routing depends on. */
export interface PublishedState {
  /** The leader's versions still in the store, by number. */
  versions: ReadonlyMap<number, VersionDoc>;
  /** Registered members → the lease of their registration. A member missing here is dead or gone. */
  alive: ReadonlyMap<string, string>;
  /** Each member's hand-off document, with the lease it was written under. */
  progress: ReadonlyMap<string, PublishedProgress>;
  /** The store revision these were read at (shown, not used). */
  revision?: string;
}

/**
 * The routing table for `state`, or undefined before the first version (or
 * when the latest cannot be built here, e.g. an unknown placement).
 *
 * For each slot (p, r) of the latest version V:
 * - its owner in V, if the owner holds it ready ("ready");
 * - else its owner in V's previous membership, if that member is alive and
 *   still holds it, i.e. has not yet taken up V, whose first step for the
 *   slot is to release it ("moving");
 * - else nobody ("none"): requests wait. This covers an old owner that is
 *   gone, dead or already releasing while the new one acquires.
 *
 * "Holds (p, r) ready" means: the member's current registration published a
 * document listing (p, r) ready, and the member owned (p, r) in every
 * version from that document's to the one asked about. An owner that is the
 * same before and after is no exception: after A→B→A, or A restarting, A
 * is ready only once it says so again.
 */
export function routingTable(state: PublishedState): RoutingTable | undefined {
  let latest: VersionDoc | undefined;
  for (const doc of state.versions.values()) if (latest === undefined || doc.version > latest.version) latest = doc;
  if (latest === undefined) return undefined;
  const target = ringOf(latest);
  const previous = previousRingOf(latest);
  if (target === undefined || previous === undefined) return undefined;
  const V = latest.version;
  const { partitions } = target.config;
  const ranks = target.ownerCount;
  /** The ring of version u, for u ≤ V: V and its previous come from `latest`, older ones from the store. */
  const ringAt = (u: number): Ring | undefined => {
    if (u === V) return target;
    if (u === V - 1) return previous;
    const doc = state.versions.get(u);
    return doc === undefined ? undefined : ringOf(doc);
  };
  const progress = new Map<string, { doc: HandoffDoc; ready: Set<Slot> } | null>();
  const current = (member: string) => {
    let entry = progress.get(member);
    if (entry === undefined) {
      const lease = state.alive.get(member);
      const published = state.progress.get(member);
      entry =
        lease === undefined || published === undefined || published.lease !== lease
          ? null
          : { doc: published.doc, ready: readySlots(published.doc) };
      progress.set(member, entry);
    }
    return entry;
  };
  /** Whether `member` holds (p, r) ready as of version `at`, by its own published word. */
  const holds = (member: string, p: number, r: number, at: number): boolean => {
    const entry = current(member);
    if (entry === null || !entry.ready.has(slotOf(p, r))) return false;
    for (let u = entry.doc.version + 1; u <= at; u++) {
      if (ringAt(u)?.owner(p, r) !== member) return false;
    }
    return true;
  };
  const slots: { member: string | undefined; state: SlotState }[] = new Array(partitions * ranks);
  for (let p = 0; p < partitions; p++) {
    for (let r = 0; r < ranks; r++) {
      const now = target.owner(p, r) as string;
      const was = previous.owner(p, r);
      let slot: { member: string | undefined; state: SlotState };
      if (holds(now, p, r, V)) slot = { member: now, state: "ready" };
      else if (was !== undefined && was !== now && notYetAt(current(was), V) && holds(was, p, r, V - 1)) {
        slot = { member: was, state: "moving" };
      } else slot = { member: undefined, state: "none" };
      slots[p * ranks + r] = slot;
    }
  }
  return RoutingTable.coordinated(target, slots, V, state.revision);
}

/** A member whose document is older than `version` has not begun that version's steps (its releases among them). */
function notYetAt(entry: { doc: HandoffDoc } | null, version: number): boolean {
  return entry !== null && entry.doc.version < version;
}

const readyCache = new WeakMap<HandoffDoc, Set<Slot>>();
function readySlots(doc: HandoffDoc): Set<Slot> {
  let slots = readyCache.get(doc);
  if (slots === undefined) {
    slots = fromLists(doc.ready);
    readyCache.set(doc, slots);
  }
  return slots;
}

/** Rings are built once per version document (documents are replaced, never mutated). */
const rings = new WeakMap<VersionDoc, Ring | null>();
const previousRings = new WeakMap<VersionDoc, Ring | null>();

function ringOf(doc: VersionDoc): Ring | undefined {
  return cached(rings, doc, () => Ring.build(doc.members, doc.ring));
}

function previousRingOf(doc: VersionDoc): Ring | undefined {
  return cached(previousRings, doc, () => Ring.build(doc.previous, doc.ring));
}

function cached(cache: WeakMap<VersionDoc, Ring | null>, doc: VersionDoc, build: () => Ring): Ring | undefined {
  let ring = cache.get(doc);
  if (ring === undefined) {
    try {
      ring = build();
    } catch {
      ring = null; // a version this process cannot build (unknown placement)
    }
    cache.set(doc, ring);
  }
  return ring ?? undefined;
}
