import { createHash } from "node:crypto";
import { ConfigError } from "../errors/config-error.ts";
import { type KeyHashName, keyHashes, type Partitioner } from "../hash/index.ts";
import { show } from "../utils/fields.ts";
import { type MemberOrder, memberOrders, sortMembers } from "./order.ts";
import { type PlacementName, placements } from "./placement/index.ts";

/** What a ring is built from, besides its members. */
export interface RingConfig {
  /** Fixed number of partitions keys hash into. It bounds the useful cluster size; libring's default. */
  partitions: number;
  /** Owners per partition (Dynamo's N). A ring with fewer members has that many. */
  replicas: number;
  /** Key hash: FNV-1a 32 (libring's README) or 64 (libring's code), over UTF-8. */
  hash: KeyHashName;
  /** How partitions are assigned to members. */
  placement: PlacementName;
  /** How members are sorted before placement. */
  order: MemberOrder;
}

export function defaultRingConfig(): RingConfig {
  return { partitions: 512, replicas: 3, hash: "fnv1a32", placement: "jump", order: "lexical" };
}

/** The largest partition count: the table takes 4·P·R bytes. */
export const maxPartitions = 1 << 24;

/**
 * An immutable assignment of partitions to members.
 *
 * Building is the only expensive step (the placement runs once); every
 * lookup afterwards is a hash and a table read that allocates nothing. Two
 * processes that build a ring from the same members and config get the same
 * table and the same `checksum`.
 */
export class Ring {
  /** Members in ring order: the order placements index into. */
  readonly members: readonly string[];
  readonly config: Readonly<RingConfig>;
  /** min(replicas, members): the owners each partition has, all distinct. */
  readonly ownerCount: number;
  /** A digest of config, members and table; equal rings have equal checksums. */
  readonly checksum: string;
  /** Primaries and replicas each member holds: loads.get(m)[r] is the number of partitions m holds at rank r. */
  readonly loads: ReadonlyMap<string, readonly number[]>;

  /** Entry p·ownerCount + r is the index in `members` of rank r of partition p. */
  readonly #table: Uint32Array;
  /**
   * One frozen owner array per partition, made at build time so `ownersOf`
   * hands out a shared array instead of allocating one per lookup. Costs a
   * small array per partition (about 3 MB at P = 65536, R = 3).
   */
  readonly #owners: readonly (readonly string[])[];
  readonly #partitionOf: Partitioner;
  readonly #index: ReadonlyMap<string, number>;

  private constructor(members: string[], config: RingConfig, table?: Uint32Array) {
    this.config = Object.freeze(config);
    this.members = Object.freeze(members);
    this.ownerCount = Math.min(config.replicas, members.length);
    this.#partitionOf = keyHashes[config.hash](config.partitions);
    this.#index = new Map(members.map((m, i) => [m, i]));
    this.#table =
      table ??
      (members.length === 0
        ? new Uint32Array(0)
        : placements[config.placement](members, config.partitions, this.ownerCount));

    const rows = ownerRows(members, this.#table, config.partitions, this.ownerCount);
    this.#owners = rows.owners;
    this.loads = rows.loads;
    this.checksum = checksumOf(this.config, this.members, this.#table);
  }

  /**
   * Builds a ring. Throws ConfigError naming the setting for a bad partition
   * or replica count, an unknown hash, placement or order, and for empty or
   * duplicate member names. No members is allowed: such a ring owns nothing.
   */
  static build(members: Iterable<string>, config: Partial<RingConfig> = {}): Ring {
    const full = validateRingConfig({ ...defaultRingConfig(), ...config });
    const seen = new Set<string>();
    for (const member of members) {
      if (typeof member !== "string" || member === "") {
        throw new ConfigError("members", "member names must be non-empty strings");
      }
      if (seen.has(member)) throw new ConfigError("members", `duplicate member "${member}"`);
      seen.add(member);
    }
    return new Ring(sortMembers(seen, full.order), full);
  }

  /**
   * A ring from a table built elsewhere (another thread or process, or a
   * hand-off's mix of old and new owners), without running the placement.
   * `members` must be in ring order; the table is laid out as `table` is
   * (entry p·ownerCount + r indexes `members`). Throws when it does not fit.
   */
  static fromTable(members: readonly string[], config: RingConfig, table: Uint32Array): Ring {
    const full = validateRingConfig({ ...config });
    const ownerCount = Math.min(full.replicas, members.length);
    if (table.length !== full.partitions * ownerCount) {
      throw new RangeError(`ring table has ${table.length} entries, expected ${full.partitions * ownerCount}`);
    }
    for (let i = 0; i < table.length; i++) {
      if ((table[i] as number) >= members.length) throw new RangeError(`ring table entry ${i} is out of range`);
    }
    return new Ring([...members], full, table);
  }

  /** The table this ring reads (entry p·ownerCount + r indexes `members`): for handing to another thread. Do not modify. */
  get table(): Uint32Array {
    return this.#table;
  }

  /** A ring with the same config and other members. */
  withMembers(members: Iterable<string>): Ring {
    return Ring.build(members, this.config);
  }

  get size(): number {
    return this.members.length;
  }

  has(member: string): boolean {
    return this.#index.has(member);
  }

  partitionOf(key: string): number {
    return this.#partitionOf(key);
  }

  /** The key's owners in replica order; shared and frozen, empty for an empty ring. */
  ownersOf(key: string): readonly string[] {
    return this.#owners[this.#partitionOf(key)] as readonly string[];
  }

  /** The key's primary owner, or undefined for an empty ring. */
  ownerOf(key: string): string | undefined {
    return this.#owners[this.#partitionOf(key)]?.[0];
  }

  ownersOfPartition(partition: number): readonly string[] {
    const owners = this.#owners[partition];
    if (owners === undefined) throw new RangeError(`partition ${partition} is outside [0, ${this.config.partitions})`);
    return owners;
  }

  /** Rank `replica` of `partition`, or undefined past the owner count. */
  owner(partition: number, replica: number): string | undefined {
    return this.#owners[partition]?.[replica];
  }

  /**
   * Every member, in the order to try them for the key: its owners, then the
   * rest walking the ring on from the primary (Dynamo's preference list). It
   * allocates; use `ownersOf` on the hot path and this on failover.
   */
  preferenceList(key: string): string[] {
    return this.preferenceListOfPartition(this.#partitionOf(key));
  }

  preferenceListOfPartition(partition: number): string[] {
    const owners = this.ownersOfPartition(partition);
    const n = this.members.length;
    if (owners.length === n) return [...owners];
    const list = [...owners];
    const start = this.#index.get(owners[0] as string) as number;
    for (let i = 1; i < n; i++) {
      const member = this.members[(start + i) % n] as string;
      if (!owners.includes(member)) list.push(member);
    }
    return list;
  }
}

/**
 * Turns a placement's index table into one frozen owner array per partition
 * (what lookups hand out) and each member's count per rank.
 */
export function ownerRows(
  members: readonly string[],
  table: Uint32Array,
  partitions: number,
  ownerCount: number,
): { owners: readonly (readonly string[])[]; loads: ReadonlyMap<string, readonly number[]> } {
  const owners: (readonly string[])[] = new Array(partitions);
  const loads = members.map(() => new Array<number>(ownerCount).fill(0));
  for (let p = 0; p < partitions; p++) {
    const row = new Array<string>(ownerCount);
    for (let r = 0; r < ownerCount; r++) {
      const i = table[p * ownerCount + r] as number;
      row[r] = members[i] as string;
      const load = loads[i] as number[];
      load[r] = (load[r] as number) + 1;
    }
    owners[p] = Object.freeze(row);
  }
  return { owners, loads: new Map(members.map((m, i) => [m, Object.freeze(loads[i] as number[])])) };
}

/** Checks a full ring config, throwing ConfigError for the first bad field. */
export function validateRingConfig(config: RingConfig, prefix = ""): RingConfig {
  const { partitions, replicas, hash, placement, order } = config;
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > maxPartitions) {
    throw new ConfigError(
      `${prefix}partitions`,
      `must be an integer from 1 to ${maxPartitions}, got ${show(partitions)}`,
    );
  }
  if (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > 255) {
    throw new ConfigError(`${prefix}replicas`, `must be an integer from 1 to 255, got ${show(replicas)}`);
  }
  if (!Object.hasOwn(keyHashes, hash)) {
    throw new ConfigError(`${prefix}hash`, `must be one of ${Object.keys(keyHashes).join(", ")}, got ${show(hash)}`);
  }
  if (!Object.hasOwn(placements, placement)) {
    throw new ConfigError(
      `${prefix}placement`,
      `must be one of ${Object.keys(placements).join(", ")}, got ${show(placement)}`,
    );
  }
  if (!memberOrders.includes(order)) {
    throw new ConfigError(`${prefix}order`, `must be one of ${memberOrders.join(", ")}, got ${show(order)}`);
  }
  return config;
}

function checksumOf(config: RingConfig, members: readonly string[], table: Uint32Array): string {
  const { partitions, replicas, hash, placement, order } = config;
  const digest = createHash("sha256");
  digest.update(JSON.stringify({ partitions, replicas, hash, placement, order, members }));
  // Little-endian on every platform, so big-endian hosts agree.
  const bytes = Buffer.alloc(table.length * 4);
  for (let i = 0; i < table.length; i++) bytes.writeUInt32LE(table[i] as number, i * 4);
  digest.update(bytes);
  return digest.digest("hex").slice(0, 16);
}
