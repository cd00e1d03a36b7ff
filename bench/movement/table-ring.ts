import { keyHashes, type Partitioner } from "../../src/hash/index.ts";
import { type MemberOrder, sortMembers } from "../../src/ring/order.ts";
import type { Placement } from "../../src/ring/placement/placement.ts";
import { ownerRows } from "../../src/ring/ring.ts";

/**
 * What the benchmark reads from a built assignment. `Ring` has exactly this
 * shape, and so does `TableRing`, so every metric treats both alike.
 */
export interface Assignment {
  readonly members: readonly string[];
  readonly config: { readonly partitions: number };
  readonly ownerCount: number;
  readonly loads: ReadonlyMap<string, readonly number[]>;
  owner(partition: number, replica: number): string | undefined;
  ownersOf(key: string): readonly string[];
}

/**
 * A comparison placement's table behind Ring's lookup path: the same
 * FNV-1a 32 partitioner, the same frozen owner row per partition, so its
 * lookup cost is measured as a table read exactly like a Ring's.
 */
export class TableRing implements Assignment {
  readonly members: readonly string[];
  readonly config: { readonly partitions: number };
  readonly ownerCount: number;
  readonly loads: ReadonlyMap<string, readonly number[]>;
  readonly #owners: readonly (readonly string[])[];
  readonly #partitionOf: Partitioner;

  constructor(
    members: Iterable<string>,
    partitions: number,
    replicas: number,
    placement: Placement,
    order: MemberOrder,
  ) {
    const sorted = sortMembers(members, order);
    this.members = Object.freeze(sorted);
    this.config = Object.freeze({ partitions });
    this.ownerCount = Math.min(replicas, sorted.length);
    this.#partitionOf = keyHashes.fnv1a32(partitions);
    const table = sorted.length === 0 ? new Uint32Array(0) : placement(sorted, partitions, this.ownerCount);
    const rows = ownerRows(sorted, table, partitions, this.ownerCount);
    this.#owners = rows.owners;
    this.loads = rows.loads;
  }

  owner(partition: number, replica: number): string | undefined {
    return this.#owners[partition]?.[replica];
  }

  ownersOf(key: string): readonly string[] {
    return this.#owners[this.#partitionOf(key)] as readonly string[];
  }
}
