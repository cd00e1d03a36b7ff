/**
 * Ring build time, median of several builds, for the sizes users run and the
 * large case the design targets (P = 65536, n = 1000, R = 3: well under 100 ms
 * with jump). The anchor is the bare placement, so the table shows what the
 * Ring adds on top (owner arrays, loads, checksum).
 *
 *   npm run bench:build
 */
import { type PlacementName, placements } from "../src/ring/placement/index.ts";
import { Ring } from "../src/ring/ring.ts";
import { markdownTable, median } from "./stats.ts";

const cases: [number, number, number, PlacementName][] = [
  [512, 10, 3, "jump"],
  [2048, 100, 3, "jump"],
  [65536, 1000, 3, "jump"],
  [512, 10, 3, "balanced"],
  [2048, 100, 3, "balanced"],
  [65536, 1000, 3, "balanced"],
];

function ms(run: () => unknown, rounds: number): number {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(samples);
}

const rows: (string | number)[][] = [];
for (const [partitions, n, replicas, placement] of cases) {
  const members = Array.from({ length: n }, (_, i) => `node-${i}`);
  const rounds = placement === "balanced" && partitions > 10000 ? 3 : 9;
  const bare = ms(() => placements[placement](members, partitions, replicas), rounds);
  const full = ms(() => Ring.build(members, { partitions, replicas, placement }), rounds);
  rows.push([placement, partitions, n, replicas, bare.toFixed(2), full.toFixed(2)]);
}
console.log(markdownTable(["placement", "P", "n", "R", "placement alone (ms)", "Ring.build (ms)"], rows));
