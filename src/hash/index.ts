import { fnv1a32, fnv1a64Mod } from "./fnv.ts";

/** Maps a key to a partition in [0, partitions). */
export type Partitioner = (key: string) => number;

/**
 * The key hashes a ring can use. libring's README says FNV-1a 32; its Go code
 * runs FNV-1a 64, so `fnv1a64` lets a ringroute tier agree key for key with a
 * running libring cluster.
 */
export const keyHashes = {
  fnv1a32: (partitions: number): Partitioner => {
    return (key) => fnv1a32(key) % partitions;
  },
  fnv1a64: (partitions: number): Partitioner => {
    return (key) => fnv1a64Mod(key, partitions);
  },
} satisfies Record<string, (partitions: number) => Partitioner>;

export type KeyHashName = keyof typeof keyHashes;
