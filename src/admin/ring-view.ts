/**
 * What GET /ring answers, in three sizes: the full table (owner names per
 * partition, as before), `table=compact` (owner indexes into `ring.members`,
 * a flat list like Ring.table) and `table=false` (no table at all).
 */
import type { Cluster } from "../cluster.ts";
import { noneReady, type RoutingTable } from "../handoff/table.ts";
import { protocolOf } from "../membership/protocol.ts";
import type { Ring } from "../ring/ring.ts";

export type TableForm = "full" | "compact" | "none";

/** A `table=` value that is none of true, full, compact, false, none. */
export class TableFormError extends Error {}

export function parseTableForm(value: string | null): TableForm {
  switch (value) {
    case null:
    case "":
    case "true":
    case "full":
      return "full";
    case "compact":
      return "compact";
    case "false":
    case "none":
      return "none";
    default:
      throw new TableFormError(`table must be true, compact or false, got "${value}"`);
  }
}

/**
 * How the page and operators read a member: up, down, ejected (skipped by the
 * proxy), draining (alive, out of the ring) or handoff (giving or taking
 * partitions that are still routed to their old owner: coordinated etcd hand-offs).
 */
export type MemberStatus = "up" | "down" | "ejected" | "draining" | "handoff";

/**
 * Slots (partition, rank) each member is handing over or taking over, as
 * the table the proxy routes by says: every slot not ready at its owner
 * counts for that owner, and for the old owner a moving slot is still
 * routed to. Empty without coordinated hand-offs (every slot is ready).
 */
export function handoffSlots(routing: RoutingTable): Map<string, number> {
  const slots = new Map<string, number>();
  if (routing.counts.ready === routing.ring.config.partitions * routing.ranks) return slots;
  const add = (name: string | undefined) => {
    if (name !== undefined) slots.set(name, (slots.get(name) ?? 0) + 1);
  };
  for (let p = 0; p < routing.ring.config.partitions; p++) {
    for (let r = 0; r < routing.ranks; r++) {
      const state = routing.state(p, r);
      if (state === "ready") continue;
      add(routing.ring.owner(p, r));
      if (state === "moving") add(routing.member(p, r));
    }
  }
  return slots;
}

/** What the proxy routes by, next to the target ring: /ring's `routing` and the ring page's line. */
export function routingJson(cluster: Cluster) {
  const routing = cluster.routing;
  return {
    checksum: routing.checksum,
    coordinated: routing.coordinated,
    version: routing.version ?? null,
    revision: routing.revision ?? null,
    /** Slots by state: ready at the owner, moving (old owner still routed to), none ready (requests wait). */
    slots: routing.counts,
    /** Why hand-offs cannot start, if so (e.g. no member in the election); null otherwise. */
    stalled: cluster.coordination?.stalled ?? null,
  };
}

export interface RingViewOptions {
  ejected?: readonly string[];
  /** Responses served and failed tries per member so far (from the metrics). */
  totals?: ReadonlyMap<string, { requests: number; errors: number }>;
  table?: TableForm;
}

export function ringJson(cluster: Cluster, options: RingViewOptions = {}) {
  const ring = cluster.ring;
  const skipped = new Set(options.ejected ?? []);
  const totals = options.totals ?? new Map();
  const form = options.table ?? "full";
  const routing = cluster.routing;
  const handoff = handoffSlots(routing);
  const routed = routing.slotsByMember();
  const status = (name: string, state: string): MemberStatus => {
    if (state !== "alive") return "down";
    if (handoff.has(name)) return "handoff";
    if (!ring.has(name)) return "draining";
    return skipped.has(name) ? "ejected" : "up";
  };
  const known = cluster.knownMembers();
  const byName = new Map(known.map((m) => [m.name, m]));
  // Ring members first, in ring order (the compact table's indexes), then the rest.
  const ordered = [...ring.members.map((name) => byName.get(name)), ...known.filter((m) => !ring.has(m.name))];
  const members = ordered.flatMap((m) =>
    m === undefined
      ? []
      : [
          {
            name: m.name,
            url: m.url,
            /** How the proxy talks to it: "h1" (HTTP/1.1) or "h2c" (HTTP/2 in cleartext). */
            protocol: protocolOf(m),
            state: m.state,
            status: status(m.name, m.state),
            tags: m.tags,
            inRing: ring.has(m.name),
            ejected: skipped.has(m.name),
            /** Partitions held at each rank, primary first. */
            partitions: ring.loads.get(m.name) ?? [],
            /** Slots (partition, rank) this member is still handing over or taking over. */
            handoff: handoff.get(m.name) ?? 0,
            /** Slots the proxy routes to this member now: ready at it, or moving (it is the old owner). */
            routed: routed.get(m.name) ?? { ready: 0, moving: 0, none: 0 },
            requests: totals.get(m.name)?.requests ?? 0,
            errors: totals.get(m.name)?.errors ?? 0,
          },
        ],
  );
  const body: Record<string, unknown> = {
    config: ring.config,
    checksum: ring.checksum,
    /** The table requests are routed by: its checksum equals `checksum` once every slot is ready. */
    routing: routingJson(cluster),
    /** Most partitions a member may hold at one rank (balanced placement); null where the placement has no cap. */
    cap: ring.cap ?? null,
    synced: cluster.synced,
    source: { kind: cluster.sourceKind, up: cluster.sourceUp },
    counts: {
      partitions: ring.config.partitions,
      members: ring.size,
      known: known.length,
      ownerCount: ring.ownerCount,
    },
    members,
  };
  if (form === "full") {
    const table: (readonly string[])[] = [];
    for (let p = 0; p < ring.config.partitions; p++) table.push(ring.ownersOfPartition(p));
    body.table = table;
  } else if (form === "compact") {
    body.ringMembers = ring.members;
    body.ownerCount = ring.ownerCount;
    body.table = Array.from(ring.table);
  }
  return body;
}

/**
 * Keys that land in `partition`, for the ring page's hover: `/users/0`,
 * `/users/1`, … tried in order until `count` are found. A partition takes
 * P tries a key on average, so the search stops after `count`·P·8 tries
 * (a few milliseconds even at P = 65,536) and returns what it found.
 */
export function exampleKeys(ring: Ring, partition: number, count = 3): string[] {
  const found: string[] = [];
  const limit = count * ring.config.partitions * 8;
  for (let i = 0; i < limit && found.length < count; i++) {
    const key = `/users/${i}`;
    if (ring.partitionOf(key) === partition) found.push(key);
  }
  return found;
}

/** Past this share of P·R moved slots, a `cells` event carries none: its triples would outweigh the whole table. */
const cellsLimit = 0.5;

/**
 * The `cells` event: the slots whose owner changed, as flat triples
 * (partition, rank, index into `ringMembers`), for a page that holds the
 * previous ring (`previousChecksum`) to apply instead of re-reading the
 * table. Slots of members that stayed keep their owner by name: the page
 * re-indexes them by `ringMembers`. `slots` is null when the change is not a
 * delta (other partition or owner counts) or moves more than half of
 * the slots.
 */
export function movedCells(ring: Ring, previous: Ring) {
  const head = {
    checksum: ring.checksum,
    previousChecksum: previous.checksum,
    partitions: ring.config.partitions,
    ownerCount: ring.ownerCount,
    ringMembers: ring.members,
  };
  const P = ring.config.partitions;
  const oc = ring.ownerCount;
  if (previous.config.partitions !== P || previous.ownerCount !== oc || oc === 0) return { ...head, slots: null };
  const after = new Map(ring.members.map((name, i) => [name, i]));
  const index = Int32Array.from(previous.members, (name) => after.get(name) ?? -1);
  const slots: number[] = [];
  const limit = cellsLimit * P * oc;
  for (let p = 0; p < P; p++) {
    for (let r = 0; r < oc; r++) {
      const now = ring.ownerIndex(p, r);
      if (index[previous.ownerIndex(p, r)] === now) continue;
      if (slots.length / 3 >= limit) return { ...head, slots: null };
      slots.push(p, r, now);
    }
  }
  return { ...head, slots };
}

/** Routed members that gave or took primaries in a routing change, most first; the rest summed; and "none ready". */
export interface RoutedMoveCounts {
  members: { name: string; partitions: number }[];
  /** Primaries given or taken by members past the first ten. */
  others: number;
  /** Primaries that were (in `from`) or became (in `to`) none ready: requests for them wait. */
  none: number;
}

/**
 * How a change of the routing table moved what is routed: slots (partition,
 * rank) whose routed member changed, primaries among them, who gave and who
 * took primaries (with "none ready" as its own side), and the slots waiting
 * now. Compared by table index, as ring/diff.ts does, so P = 65,536 is a
 * few integer reads a slot.
 */
export function routedMoves(routing: RoutingTable, previous: RoutingTable) {
  const now = routing.toMessage();
  const was = previous.toMessage();
  const partitions = routing.ring.config.partitions;
  const ranks = routing.ranks;
  const from = new Map<number, number>();
  const to = new Map<number, number>();
  let slots = 0;
  let primaries = 0;
  let fromNone = 0;
  let toNone = 0;
  const comparable = previous.ring.config.partitions === partitions && previous.ranks === ranks;
  if (comparable) {
    const index = remap(was.members, now.members);
    for (let i = 0; i < now.table.length; i++) {
      const after = now.table[i] as number;
      const before = was.table[i] as number;
      const mapped = before === noneReady ? noneReady : (index[before] as number);
      if (mapped === after) continue;
      slots++;
      if (i % ranks !== 0) continue;
      primaries++;
      if (before === noneReady) fromNone++;
      else from.set(before, (from.get(before) ?? 0) + 1);
      if (after === noneReady) toNone++;
      else to.set(after, (to.get(after) ?? 0) + 1);
    }
  }
  const top = (counts: Map<number, number>, names: readonly string[], none: number): RoutedMoveCounts => {
    const sorted = [...counts]
      .map(([i, n]) => [names[i] as string, n] as const)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return {
      members: sorted.slice(0, 10).map(([name, n]) => ({ name, partitions: n })),
      others: sorted.slice(10).reduce((sum, [, n]) => sum + n, 0),
      none,
    };
  };
  return {
    checksum: routing.checksum,
    previousChecksum: previous.checksum,
    version: routing.version ?? null,
    coordinated: routing.coordinated,
    /** Null when the tables are not comparable (another partition or owner count). */
    moved: comparable ? { primaries, slots } : null,
    from: top(from, was.members, fromNone),
    to: top(to, now.members, toNone),
    /** Slots by state after the change. */
    states: routing.counts,
    size: routing.ring.size,
  };
}

/** A previous table's index of a member no longer in the table. */
const gone = -1;

/** Each index into `before` as an index into `after` (`gone` when not there). */
function remap(before: readonly string[], after: readonly string[]): Int32Array {
  const at = new Map(after.map((name, i) => [name, i]));
  return Int32Array.from(before, (name) => at.get(name) ?? gone);
}

/**
 * The `cells` event under coordinated hand-offs: the routing table's slots
 * whose routed member or state changed, as triples (partition, rank, index
 * into `ringMembers`, −1 for none ready) with each one's state in `states`
 * (0 ready, 1 moving, 2 none ready: the order of `slotStates`). `ringMembers` are the routing table's
 * members, the checksums its checksums: a page that shows the previous
 * table applies it as it applies a ring's cells. `slots` is null when the
 * tables are not comparable or more than half of the slots changed.
 */
export function routedCells(routing: RoutingTable, previous: RoutingTable) {
  const now = routing.toMessage();
  const was = previous.toMessage();
  const P = routing.ring.config.partitions;
  const ranks = routing.ranks;
  const head = {
    checksum: routing.checksum,
    previousChecksum: previous.checksum,
    partitions: P,
    ownerCount: ranks,
    ringMembers: now.members,
    coordinated: routing.coordinated,
  };
  if (previous.ring.config.partitions !== P || previous.ranks !== ranks || ranks === 0) {
    return { ...head, slots: null, states: null };
  }
  const index = remap(was.members, now.members);
  const slots: number[] = [];
  const states: number[] = [];
  const limit = cellsLimit * P * ranks;
  for (let i = 0; i < now.table.length; i++) {
    const after = now.table[i] as number;
    const before = was.table[i] as number;
    const mapped = before === noneReady ? noneReady : (index[before] as number);
    const state = now.states[i] as number;
    if (mapped === after && state === was.states[i]) continue;
    if (slots.length / 3 >= limit) return { ...head, slots: null, states: null };
    slots.push(Math.floor(i / ranks), i % ranks, after === noneReady ? -1 : after);
    states.push(state);
  }
  return { ...head, slots, states };
}

/**
 * `/ring?table=compact`'s `routed` under coordinated hand-offs: the routing
 * table as the page holds it, one entry a slot (partition-major) indexing
 * `members` or −1 for none ready, and each slot's state.
 */
export function routedCompact(routing: RoutingTable) {
  const message = routing.toMessage();
  return {
    checksum: routing.checksum,
    members: message.members,
    table: Array.from(message.table, (i) => (i === noneReady ? -1 : i)),
    /** Per slot: 0 ready, 1 moving, 2 none ready (the order of `slotStates`). */
    states: Array.from(message.states),
  };
}
