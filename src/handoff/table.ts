import { createHash } from "node:crypto";
import { Ring, type RingConfig } from "../ring/ring.ts";

/** The table entry of a slot no member holds ready: requests for it wait. */
export const noneReady = 0xffffffff;

/** How a slot is routed: to its owner, which holds it ready; to its old owner while the new one takes it over; to nobody. */
export const slotStates = ["ready", "moving", "none"] as const;
export type SlotState = (typeof slotStates)[number];
const READY = 0;
const MOVING = 1;
const NONE = 2;

/** Counts of slots by state. */
export interface SlotCounts {
  ready: number;
  moving: number;
  none: number;
}

/**
 * A routing table as plain data, for a worker thread or process: the target
 * ring's members and config (to rebuild the ring for key → partition and
 * preference lists), the routed members, one Uint32 a slot (an index into
 * `members`, or `noneReady`), one state byte a slot, the version, the etcd
 * revision, and the checksum to verify on arrival.
 */
export interface RoutingMessage {
  ring: { members: string[]; config: RingConfig };
  members: string[];
  ranks: number;
  table: Uint32Array;
  states: Uint8Array;
  coordinated: boolean;
  version: number | null;
  revision: string | null;
  checksum: string;
}

/**
 * What requests are routed by: for every (partition, rank) slot, the member
 * to send to or "none ready". Immutable; a lookup is a table read. It is not
 * a Ring (a Ring cannot say "nobody"): `ring` is the target ring (the
 * latest version's), which still answers key → partition and gives
 * preference lists.
 *
 * Built by the hand-off routing rule (`routingTable` in ./routing.ts) under
 * coordinated hand-offs, or as `RoutingTable.ready(ring)` — every slot to
 * its owner, ready — for every other source. Serialisable for workers:
 * `toMessage()` gives members + a Uint32 table with `noneReady` as the
 * sentinel + states + version + checksum; `fromMessage()` rebuilds it and
 * checks the checksum.
 */
export class RoutingTable {
  /** The target ring: partitions, hash and preference lists. */
  readonly ring: Ring;
  /** Members the table refers to, sorted (target owners and old owners still routed to). */
  readonly members: readonly string[];
  /** Slots per partition: the target ring's owner count. */
  readonly ranks: number;
  /** Whether "none ready" and "moving" can happen (coordinated hand-offs); otherwise failover walks the preference list. */
  readonly coordinated: boolean;
  /** The ring version this table routes by; undefined without coordination. */
  readonly version: number | undefined;
  /** The etcd revision the table was computed at (decimal), if any. */
  readonly revision: string | undefined;
  /** The target ring's checksum while every slot is ready at its owner; otherwise a digest of the table. */
  readonly checksum: string;
  readonly counts: Readonly<SlotCounts>;
  readonly #table: Uint32Array;
  readonly #states: Uint8Array;
  /** Per partition, the routed member of each rank (undefined: none ready). */
  readonly #rows: (string | undefined)[][];
  /** Per partition, the routed members without gaps, by rank. */
  readonly #ready: string[][];

  private constructor(
    ring: Ring,
    members: readonly string[],
    table: Uint32Array,
    states: Uint8Array,
    coordinated: boolean,
    version: number | undefined,
    revision: string | undefined,
  ) {
    const ranks = ring.ownerCount;
    const partitions = ring.config.partitions;
    if (table.length !== partitions * ranks || states.length !== table.length) {
      throw new RangeError(`a routing table needs ${partitions * ranks} slots, got ${table.length}`);
    }
    this.ring = ring;
    this.members = Object.freeze([...members]);
    this.ranks = ranks;
    this.coordinated = coordinated;
    this.version = version;
    this.revision = revision;
    this.#table = table;
    this.#states = states;
    const counts = { ready: 0, moving: 0, none: 0 };
    const rows: (string | undefined)[][] = new Array(partitions);
    const ready: string[][] = new Array(partitions);
    for (let p = 0; p < partitions; p++) {
      const row: (string | undefined)[] = new Array(ranks);
      const list: string[] = [];
      for (let r = 0; r < ranks; r++) {
        const i = p * ranks + r;
        const index = table[i] as number;
        const state = states[i] as number;
        if (state === READY) counts.ready++;
        else if (state === MOVING) counts.moving++;
        else counts.none++;
        if ((index === noneReady) !== (state === NONE) || (index !== noneReady && index >= this.members.length)) {
          throw new RangeError(`slot (${p}, ${r}) has entry ${index} in state ${state}`);
        }
        const member = index === noneReady ? undefined : (this.members[index] as string);
        row[r] = member;
        if (member !== undefined && !list.includes(member)) list.push(member);
      }
      rows[p] = row;
      ready[p] = list;
    }
    this.#rows = rows;
    this.#ready = ready;
    this.counts = Object.freeze(counts);
    this.checksum = counts.ready === table.length ? ring.checksum : digest(ring, this.members, table, states);
  }

  /** Every slot to its owner in `ring`, ready: routing without coordinated hand-offs. Cached per ring. */
  static ready(ring: Ring): RoutingTable {
    let table = readyTables.get(ring);
    if (table === undefined) {
      const index = new Map(ring.members.map((m, i) => [m, i]));
      const slots = new Uint32Array(ring.config.partitions * ring.ownerCount);
      for (let p = 0; p < ring.config.partitions; p++) {
        for (let r = 0; r < ring.ownerCount; r++) {
          slots[p * ring.ownerCount + r] = index.get(ring.owner(p, r) as string) as number;
        }
      }
      table = new RoutingTable(ring, ring.members, slots, new Uint8Array(slots.length), false, undefined, undefined);
      readyTables.set(ring, table);
    }
    return table;
  }

  /** A coordinated table: one (member, state) per slot of `ring`, partition-major. */
  static coordinated(
    ring: Ring,
    slots: readonly { member: string | undefined; state: SlotState }[],
    version: number,
    revision?: string,
  ): RoutingTable {
    const members = [...new Set(slots.flatMap((s) => (s.member === undefined ? [] : [s.member])))].sort();
    const index = new Map(members.map((m, i) => [m, i]));
    const table = new Uint32Array(slots.length);
    const states = new Uint8Array(slots.length);
    slots.forEach((slot, i) => {
      table[i] = slot.member === undefined || slot.state === "none" ? noneReady : (index.get(slot.member) as number);
      states[i] = slot.member === undefined ? NONE : slotStates.indexOf(slot.state);
    });
    return new RoutingTable(ring, members, table, states, true, version, revision);
  }

  /** Rebuilds a table sent by `toMessage`; throws when its checksum does not match what arrived. */
  static fromMessage(message: RoutingMessage): RoutingTable {
    const ring = Ring.build(message.ring.members, message.ring.config);
    const table = new RoutingTable(
      ring,
      message.members,
      message.table,
      message.states,
      message.coordinated,
      message.version ?? undefined,
      message.revision ?? undefined,
    );
    if (table.checksum !== message.checksum) {
      throw new Error(`routing table checksum ${table.checksum} differs from the one sent, ${message.checksum}`);
    }
    return table;
  }

  toMessage(): RoutingMessage {
    return {
      ring: { members: [...this.ring.members], config: this.ring.config },
      members: [...this.members],
      ranks: this.ranks,
      table: this.#table.slice(),
      states: this.#states.slice(),
      coordinated: this.coordinated,
      version: this.version ?? null,
      revision: this.revision ?? null,
      checksum: this.checksum,
    };
  }

  /** The member to send (partition, rank) to; undefined when none holds it ready (or past the ranks). */
  member(partition: number, rank: number): string | undefined {
    return this.#rows[partition]?.[rank];
  }

  /** Whether any slot is routed to `member`. */
  has(member: string): boolean {
    return this.slotsByMember().has(member);
  }

  /** How (partition, rank) is routed. */
  state(partition: number, rank: number): SlotState {
    return slotStates[this.#states[partition * this.ranks + rank] as number] as SlotState;
  }

  /** The partition's routed members by rank, skipping slots none holds ready. Do not mutate. */
  routed(partition: number): readonly string[] {
    return this.#ready[partition] ?? [];
  }

  /** Slots each member is routed, by state: what the ring page's bars show. */
  slotsByMember(): Map<string, SlotCounts> {
    const out = new Map<string, SlotCounts>();
    for (let i = 0; i < this.#table.length; i++) {
      const index = this.#table[i] as number;
      if (index === noneReady) continue;
      const name = this.members[index] as string;
      let counts = out.get(name);
      if (counts === undefined) {
        counts = { ready: 0, moving: 0, none: 0 };
        out.set(name, counts);
      }
      counts[slotStates[this.#states[i] as number] as SlotState]++;
    }
    return out;
  }
}

const readyTables = new WeakMap<Ring, RoutingTable>();

function digest(ring: Ring, members: readonly string[], table: Uint32Array, states: Uint8Array): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ ring: ring.checksum, members }));
  // Little-endian on every platform, so big-endian hosts agree.
  const bytes = Buffer.alloc(table.length * 4);
  for (let i = 0; i < table.length; i++) bytes.writeUInt32LE(table[i] as number, i * 4);
  hash.update(bytes);
  hash.update(states);
  return hash.digest("hex").slice(0, 16);
}
