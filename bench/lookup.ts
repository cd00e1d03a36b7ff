/**
 * ns per lookup: ring.ownersOf(key) for 16- and 64-byte keys, next to the
 * bare FNV-1a hash it starts with (the anchor: a lookup should cost little
 * more than hashing the key). Medians of several rounds, one process.
 *
 *   npm run bench:lookup
 */
import { fnv1a32 } from "../src/hash/fnv.ts";
import { Ring } from "../src/ring/ring.ts";
import { markdownTable, median, seededRandom } from "./stats.ts";

const random = seededRandom(42);
const keys = (length: number) =>
  Array.from({ length: 4096 }, () =>
    Array.from({ length }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join(""),
  );

function nsPer(run: (keys: string[]) => number, input: string[], rounds = 15, iterations = 200): number {
  let sink = 0;
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink += run(input);
    samples.push(Number(process.hrtime.bigint() - start) / (iterations * input.length));
  }
  if (sink === -1) console.log(sink); // keeps the work observable
  return median(samples.slice(3)); // the first rounds warm the JIT
}

const rings = [
  ["jump, fnv1a32, P=512, n=10, R=3", Ring.build(names(10))],
  ["jump, fnv1a64, P=512, n=10, R=3", Ring.build(names(10), { hash: "fnv1a64" })],
  ["balanced, fnv1a32, P=65536, n=100, R=3", Ring.build(names(100), { partitions: 65536, placement: "balanced" })],
] as const;

const rows: (string | number)[][] = [];
for (const length of [16, 64]) {
  const input = keys(length);
  const hashOnly = nsPer((ks) => {
    let s = 0;
    for (const k of ks) s += fnv1a32(k);
    return s;
  }, input);
  rows.push([`${length}`, "fnv1a32 hash alone (anchor)", hashOnly.toFixed(1), "1.00"]);
  for (const [label, ring] of rings) {
    const ns = nsPer((ks) => {
      let s = 0;
      for (const k of ks) s += ring.ownersOf(k).length;
      return s;
    }, input);
    rows.push([`${length}`, `ownersOf: ${label}`, ns.toFixed(1), (ns / hashOnly).toFixed(2)]);
  }
}
console.log(markdownTable(["key bytes", "operation", "ns/lookup (median)", "× hash"], rows));

function names(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `node-${i}`);
}
