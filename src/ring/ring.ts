import { createHash } from "node:crypto";
import { endianness } from "node:os";
import { ConfigError } from "../errors/config-error.ts";
import { type KeyHashName, keyHashes, type Partitioner } from "../hash/index.ts";
import { show } from "../utils/fields.ts";
import { type MemberOrder, memberOrders, sortMembers } from "./order.ts";
import { balanceCap } from "./placement/balanced.ts";
import { type BalanceFactor, type Placement, type PlacementName, placements } from "./placement/index.ts";

/** What a ring is built from, besides its members. */
export interface RingConfig {
  /** Fixed number of partitions keys hash into. It bounds the useful cluster size; libring's default. */
  partitions: number;
  /** Owners per partition (Dynamo's N). A ring with fewer members has that many. */
  replicas: number;
  /** Key hash: FNV-1a 32 (libring's README) or 64 (libring's code), over UTF-8. */
  hash: KeyHashName;
  /**
   * How partitions are assigned to members: a registered name, or (from code)
   * your own Placement function, whose name goes into the checksum.
   */
  placement: PlacementName | Placement;
  /** How members are sorted before placement. */
  order: MemberOrder;
  /** `balanced` only: how far above the mean a member's load may go (factor ≥ 1, or `auto`). */
  balanceFactor: BalanceFactor;
  /** `vnodes` only: virtual nodes a member. */
  vnodes: number;
  /** `libring` sets libring's code's choices: fnv1a64, lexical order, jump (and Serf's `tagMatch: any`). */
  compat: RingCompat;
}

export type RingCompat = "none" | "libring";

export function defaultRingConfig(): RingConfig {
  return {
    partitions: 512,
    replicas: 3,
    hash: "fnv1a32",
    placement: "balanced",
    order: "lexical",
    balanceFactor: 1.25,
    vnodes: 150,
    compat: "none",
  };
}

/** What `compat: libring` fixes: the choices libring's Go code makes. */
export const libringRing = { hash: "fnv1a64", order: "lexical", placement: "jump" } as const;

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
  /** `balanced` only: the most partitions of a rank one member may hold, from the balance factor; else undefined. */
  readonly cap: number | undefined;

  /** Entry p·ownerCount + r is the index in `members` of rank r of partition p. */
  readonly #table: Uint32Array;
  /**
   * One frozen owner array per partition, made on a partition's first lookup
   * and kept, so `ownersOf` hands out a shared array instead of allocating
   * one per lookup. Made lazily, so a ring built on another thread costs the
   * serving thread no 65,536 allocations when it arrives (up to about 3 MB at
   * P = 65536, R = 3, once every partition was looked up).
   */
  readonly #owners: (readonly string[] | undefined)[];
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
        : placementOf(config)(members, config.partitions, this.ownerCount, {
            balanceFactor: config.balanceFactor,
            vnodes: config.vnodes,
          }));
    this.cap =
      config.placement === "balanced" && members.length > 0
        ? balanceCap(config.partitions, members.length, config.balanceFactor)
        : undefined;

    this.#owners = new Array(members.length === 0 ? 0 : config.partitions);
    this.loads = loadsOf(members, this.#table, this.ownerCount);
    this.checksum = checksumOf(this.config, this.members, this.#table);
  }

  /**
   * Builds a ring. Throws ConfigError naming the setting for a bad partition
   * or replica count, an unknown hash, placement or order, and for empty or
   * duplicate member names. No members is allowed: such a ring owns nothing.
   */
  static build(members: Iterable<string>, config: Partial<RingConfig> = {}): Ring {
    const full = validateRingConfig(withCompat({ ...defaultRingConfig(), ...config }, config));
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

  /** The placement's name: a registered one, or the name of your own function. */
  get placementName(): string {
    return placementNameOf(this.config.placement);
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
    const p = this.#partitionOf(key);
    return this.#owners[p] ?? this.#row(p);
  }

  /** The key's primary owner, or undefined for an empty ring. */
  ownerOf(key: string): string | undefined {
    return this.ownersOf(key)[0];
  }

  ownersOfPartition(partition: number): readonly string[] {
    const owners = this.#owners[partition];
    if (owners !== undefined) return owners;
    if (!(Number.isInteger(partition) && partition >= 0 && partition < this.config.partitions)) {
      throw new RangeError(`partition ${partition} is outside [0, ${this.config.partitions})`);
    }
    return this.#row(partition);
  }

  /** Rank `replica` of `partition`, or undefined past the owner count. */
  owner(partition: number, replica: number): string | undefined {
    if (!(replica >= 0 && replica < this.ownerCount && partition >= 0 && partition < this.config.partitions)) {
      return undefined;
    }
    return this.members[this.#table[partition * this.ownerCount + replica] as number];
  }

  /** Index in `members` of rank `replica` of `partition` (no bounds check): for comparing rings by table. */
  ownerIndex(partition: number, replica: number): number {
    return this.#table[partition * this.ownerCount + replica] as number;
  }

  /** Makes and keeps partition p's frozen owner array (empty for an empty ring). */
  #row(p: number): readonly string[] {
    const n = this.ownerCount;
    const row = new Array<string>(n);
    for (let r = 0; r < n; r++) row[r] = this.members[this.#table[p * n + r] as number] as string;
    const frozen = Object.freeze(row);
    if (n > 0) this.#owners[p] = frozen;
    return frozen;
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

/** Each member's count of partitions per rank, from the index table. */
function loadsOf(
  members: readonly string[],
  table: Uint32Array,
  ownerCount: number,
): ReadonlyMap<string, readonly number[]> {
  const counts = new Uint32Array(members.length * ownerCount);
  for (let i = 0; i < table.length; i++) {
    const r = i % ownerCount;
    counts[(table[i] as number) * ownerCount + r] = (counts[(table[i] as number) * ownerCount + r] as number) + 1;
  }
  return new Map(
    members.map((m, i) => [m, Object.freeze(Array.from(counts.subarray(i * ownerCount, (i + 1) * ownerCount)))]),
  );
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

/**
 * Applies `compat`'s choices to `config`. A field `given` explicitly that
 * contradicts them is an error naming it, not silently overridden.
 */
export function withCompat(
  config: RingConfig,
  given: Partial<Record<keyof RingConfig, unknown>>,
  prefix = "",
): RingConfig {
  if (config.compat !== "libring") return config;
  for (const [field, value] of Object.entries(libringRing) as [keyof typeof libringRing, string][]) {
    if (given[field] !== undefined && given[field] !== value) {
      throw new ConfigError(
        `${prefix}${field}`,
        `must be ${value} with compat libring (libring's code), got ${show(given[field])}`,
      );
    }
  }
  return { ...config, ...libringRing };
}

/**
 * A balance factor as written: a number ≥ 1 (canonical, 1.25), a percent from
 * 100 up as HAProxy's `hash-balance-factor` and Envoy's `hash_balance_factor`
 * take it (125 = 1.25), or `auto`. Strings of either form are accepted, as
 * flags and environment variables give them.
 */
export function parseBalanceFactor(raw: unknown, field: string): BalanceFactor {
  if (raw === "auto") return "auto";
  const value = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : Number.NaN;
  if (!Number.isFinite(value) || value < 1 || value > maxBalancePercent) {
    throw new ConfigError(
      field,
      `must be a factor from 1 (e.g. 1.25), a percent from 100 (e.g. 125) or auto, got ${show(raw)}`,
    );
  }
  return value >= 100 ? value / 100 : value;
}

const maxBalancePercent = 10000;

/** Checks a full ring config, throwing ConfigError for the first bad field. */
export function validateRingConfig(config: RingConfig, prefix = ""): RingConfig {
  const { partitions, replicas, hash, placement, order, balanceFactor, vnodes, compat } = config;
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
  if (typeof placement === "function") {
    if (placement.name === "" || Object.hasOwn(placements, placement.name)) {
      throw new ConfigError(
        `${prefix}placement`,
        `a placement function needs a name of its own (it goes into the checksum), got ${show(placement.name)}`,
      );
    }
  } else if (!Object.hasOwn(placements, placement)) {
    throw new ConfigError(
      `${prefix}placement`,
      `must be one of ${Object.keys(placements).join(", ")}, got ${show(placement)}`,
    );
  }
  if (!memberOrders.includes(order)) {
    throw new ConfigError(`${prefix}order`, `must be one of ${memberOrders.join(", ")}, got ${show(order)}`);
  }
  if (balanceFactor !== "auto" && (typeof balanceFactor !== "number" || !(balanceFactor >= 1 && balanceFactor < 100))) {
    throw new ConfigError(
      `${prefix}balanceFactor`,
      `must be a factor from 1 to below 100 (e.g. 1.25) or auto, got ${show(balanceFactor)}`,
    );
  }
  if (!Number.isSafeInteger(vnodes) || vnodes < 1 || vnodes > 10000) {
    throw new ConfigError(`${prefix}vnodes`, `must be an integer from 1 to 10000, got ${show(vnodes)}`);
  }
  if (compat !== "none" && compat !== "libring") {
    throw new ConfigError(`${prefix}compat`, `must be none or libring, got ${show(compat)}`);
  }
  return config;
}

function placementOf(config: RingConfig): Placement {
  return typeof config.placement === "function" ? config.placement : placements[config.placement];
}

function placementNameOf(placement: PlacementName | Placement): string {
  return typeof placement === "function" ? placement.name : placement;
}

/**
 * A digest of what decides the table. Settings only one placement reads enter
 * it only for that placement, so a jump ring's checksum is the same as before
 * they existed (a mixed-version fleet still agrees).
 */
function checksumOf(config: RingConfig, members: readonly string[], table: Uint32Array): string {
  const { partitions, replicas, hash, order } = config;
  const placement = placementNameOf(config.placement);
  const settings: Record<string, unknown> = { partitions, replicas, hash, placement, order };
  if (placement === "balanced") settings.balanceFactor = config.balanceFactor;
  if (placement === "vnodes") settings.vnodes = config.vnodes;
  if (typeof config.placement === "function") settings.custom = true;
  settings.members = members;
  const digest = createHash("sha256");
  digest.update(JSON.stringify(settings));
  // Little-endian on every platform, so big-endian hosts agree; on little-endian ones the table is those bytes.
  if (endianness() === "LE") {
    digest.update(new Uint8Array(table.buffer, table.byteOffset, table.byteLength));
  } else {
    const bytes = Buffer.alloc(table.length * 4);
    for (let i = 0; i < table.length; i++) bytes.writeUInt32LE(table[i] as number, i * 4);
    digest.update(bytes);
  }
  return digest.digest("hex").slice(0, 16);
}
