import test from "ava";
import fc from "fast-check";
import { fnv1a32, fnv1a64Mod } from "../src/hash/fnv.ts";
import { jump } from "../src/hash/jump.ts";
import { referenceFnv1a32, referenceFnv1a64, referenceJump } from "./helpers/reference.ts";
import { goVectors } from "./helpers/vectors.ts";

const split = (key: bigint) => [Number(key >> 32n), Number(key & 0xffffffffn)] as const;

test("FNV-1a 32 matches the published test vectors", (t) => {
  t.is(fnv1a32(""), 0x811c9dc5);
  t.is(fnv1a32("a"), 0xe40c292c);
  t.is(fnv1a32("foobar"), 0xbf9cf968);
});

test("FNV-1a 64 matches the published test vectors, reduced modulo any modulus", (t) => {
  for (const [key, hash] of [
    ["", 0xcbf29ce484222325n],
    ["a", 0xaf63dc4c8601ec8cn],
    ["foobar", 0x85944171f73967e8n],
  ] as const) {
    for (const modulus of [1, 7, 512, 65536, 2 ** 31 - 1, 2 ** 31]) {
      t.is(fnv1a64Mod(key, modulus), Number(hash % BigInt(modulus)), `${JSON.stringify(key)} mod ${modulus}`);
    }
  }
});

test("both FNV variants hash UTF-8 bytes, as Go does, for any well-formed string", (t) => {
  const wellFormed = fc.string({ unit: "grapheme", maxLength: 40 });
  fc.assert(fc.property(wellFormed, (key) => fnv1a32(key) === referenceFnv1a32(key)));
  fc.assert(
    fc.property(
      wellFormed,
      fc.integer({ min: 1, max: 2 ** 31 }),
      (key, modulus) => fnv1a64Mod(key, modulus) === Number(referenceFnv1a64(key) % BigInt(modulus)),
    ),
  );
  t.pass();
});

test("keys map to the same partitions as Go's hash/fnv, ASCII and non-ASCII", (t) => {
  for (const c of goVectors.cases) {
    c.keys.forEach((key, i) => {
      const partition = c.hash === "fnv1a32" ? fnv1a32(key) % c.partitions : fnv1a64Mod(key, c.partitions);
      t.is(partition, c.partition[i] as number, `${c.hash} ${JSON.stringify(key)} P=${c.partitions}`);
    });
  }
});

test("jump agrees with github.com/dgryski/go-jump on Go's vectors", (t) => {
  t.true(goVectors.jump.length > 100);
  for (const v of goVectors.jump) t.is(jump(...split(BigInt(v.key)), v.buckets), v.bucket, `${v.key} / ${v.buckets}`);
});

test("jump agrees with a BigInt model for any 64-bit key and bucket count", (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 1, max: 1 << 20 }), (key, buckets) => {
      return jump(...split(key), buckets) === referenceJump(key, buckets);
    }),
  );
  t.pass();
});

test("jump only ever moves a key to the new bucket when one is added", (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 1, max: 5000 }), (key, n) => {
      const before = jump(...split(key), n);
      const after = jump(...split(key), n + 1);
      return before >= 0 && before < n && (after === before || after === n);
    }),
  );
  t.pass();
});
