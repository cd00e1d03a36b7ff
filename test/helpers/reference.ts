/**
 * Slow, obviously-correct models for the fast code to be checked against:
 * BigInt arithmetic over TextEncoder's UTF-8 bytes, straight from the specs.
 */

const utf8 = new TextEncoder();

export function referenceFnv1a32(key: string): number {
  let hash = 0x811c9dc5n;
  for (const byte of utf8.encode(key)) hash = ((hash ^ BigInt(byte)) * 0x01000193n) & 0xffffffffn;
  return Number(hash);
}

export function referenceFnv1a64(key: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of utf8.encode(key)) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash;
}

/** The paper's loop with 64-bit wrap-around done by BigInt. */
export function referenceJump(key: bigint, buckets: number): number {
  let b = -1n;
  let j = 0n;
  let k = key;
  while (j < BigInt(buckets)) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & 0xffffffffffffffffn;
    j = BigInt(Math.floor(Number(b + 1n) * (2 ** 31 / Number((k >> 33n) + 1n))));
  }
  return Number(b);
}
