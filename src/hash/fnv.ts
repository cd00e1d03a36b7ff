/**
 * FNV-1a, Fowler–Noll–Vo, https://datatracker.ietf.org/doc/html/draft-eastlake-fnv
 * over the UTF-8 bytes of a string, as Go's hash/fnv computes it for []byte(s).
 */
import fnvPlus from "fnv-plus";

/**
 * FNV-1a 32 of the key's UTF-8 bytes. fnv-plus's `fast1a32utf` encodes as it
 * goes, so no byte buffer is allocated; its `fast1a32` and `hash()` hash
 * UTF-16 code units instead and differ from Go for every non-ASCII key.
 */
export const fnv1a32: (key: string) => number = fnvPlus.fast1a32utf;

/**
 * FNV-1a 64 of the key's UTF-8 bytes, reduced modulo `modulus` (at most 2³¹).
 *
 * Written out because fnv-plus's 64-bit variant returns a hex string, an
 * allocation and a parse per lookup. The state is four 16-bit limbs so every
 * product stays exact in a double: multiplying by the prime 2⁴⁰ + 0x1b3 is
 * 0x1b3·x plus x shifted up two and a half limbs.
 */
export function fnv1a64Mod(key: string, modulus: number): number {
  let v0 = 0x2325;
  let v1 = 0x8422;
  let v2 = 0x9ce4;
  let v3 = 0xcbf2;
  const length = key.length;
  for (let i = 0; i < length; i++) {
    let c = key.charCodeAt(i);
    // Emit the code point's UTF-8 bytes through the `pending` register:
    // up to four bytes, low byte first.
    let pending: number;
    let count: number;
    if (c < 0x80) {
      pending = c;
      count = 1;
    } else if (c < 0x800) {
      pending = 0xc0 | (c >> 6) | ((0x80 | (c & 0x3f)) << 8);
      count = 2;
    } else if ((c & 0xfc00) === 0xd800 && i + 1 < length && (key.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c & 0x3ff) << 10) + (key.charCodeAt(++i) & 0x3ff);
      pending =
        (0xf0 | (c >> 18) | ((0x80 | ((c >> 12) & 0x3f)) << 8) | ((0x80 | ((c >> 6) & 0x3f)) << 16)) +
        (0x80 | (c & 0x3f)) * 0x1000000;
      count = 4;
    } else {
      pending = 0xe0 | (c >> 12) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
      count = 3;
    }
    for (; count > 0; count--) {
      v0 ^= pending & 0xff;
      pending >>>= 8;
      // x *= 2^40 + 0x1b3 (mod 2^64), limb by limb with carries; every
      // intermediate stays below 2^27, so shifts are exact.
      const t0 = v0 * 0x1b3;
      const t1 = v1 * 0x1b3 + (t0 >>> 16);
      const t2 = v2 * 0x1b3 + v0 * 0x100 + (t1 >>> 16);
      v3 = (v3 * 0x1b3 + v1 * 0x100 + (t2 >>> 16)) & 0xffff;
      v0 = t0 & 0xffff;
      v1 = t1 & 0xffff;
      v2 = t2 & 0xffff;
    }
  }
  // Horner's rule on the limbs keeps each step below 2^47.
  let r = v3 % modulus;
  r = (r * 0x10000 + v2) % modulus;
  r = (r * 0x10000 + v1) % modulus;
  return (r * 0x10000 + v0) % modulus;
}
