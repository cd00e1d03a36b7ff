/**
 * Jump consistent hash, from John Lamping and Eric Veach, "A Fast, Minimal
 * Memory, Consistent Hash Algorithm" (2014), https://arxiv.org/abs/1406.2294.
 *
 * Bit-exact with github.com/dgryski/go-jump, which libring uses. JavaScript has
 * no unsigned 64-bit integers short of BigInt (which allocates), so the 64-bit
 * key is carried as two unsigned 32-bit halves and the linear congruential
 * step is done in 16-bit limbs.
 */

// 2862933555777941757, the paper's LCG multiplier, split into 32-bit halves.
const MUL_HI = 0x27bb2ee6;
const MUL_LO = 0x87b0b0fd;
const MUL_LO_0 = MUL_LO & 0xffff;
const MUL_LO_1 = MUL_LO >>> 16;

/** Returns the bucket in [0, buckets) for the 64-bit key keyHi·2³² + keyLo. */
export function jump(keyHi: number, keyLo: number, buckets: number): number {
  let hi = keyHi >>> 0;
  let lo = keyLo >>> 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    // key = key * 2862933555777941757 + 1 (mod 2^64)
    const lo0 = lo & 0xffff;
    const lo1 = lo >>> 16;
    const mid = lo0 * MUL_LO_1 + lo1 * MUL_LO_0;
    const low = lo0 * MUL_LO_0 + (mid % 0x10000) * 0x10000 + 1;
    const carry = Math.floor(low / 0x100000000);
    hi = (lo1 * MUL_LO_1 + Math.floor(mid / 0x10000) + carry + Math.imul(hi, MUL_LO) + Math.imul(lo, MUL_HI)) >>> 0;
    lo = low >>> 0;
    // j = (b + 1) * (2^31 / ((key >> 33) + 1)), in float64 as in Go
    j = Math.floor((b + 1) * (2147483648 / ((hi >>> 1) + 1)));
  }
  return b;
}
