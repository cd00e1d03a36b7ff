/**
 * The 32-bit hashes the vnode ring (and the benchmark's rendezvous) put
 * members and partitions on.
 *
 * A vnode ring is only as even as its hash is uniform, so FNV-1a (weak in its
 * high bits on short, similar strings such as "node-1#17") is followed by
 * MurmurHash3's 32-bit finalizer, which spreads every input bit over the
 * whole word.
 */
import { fnv1a32 } from "../../hash/fnv.ts";

/** MurmurHash3's fmix32: a bijection on 32-bit words with full avalanche. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A string's point in [0, 2³²). */
export function pointOf(text: string): number {
  return mix32(fnv1a32(text));
}

/** A partition's point in [0, 2³²): partitions are numbered, so hash the number's text like a key. */
export function partitionPoint(partition: number): number {
  return pointOf(`partition-${partition}`);
}
