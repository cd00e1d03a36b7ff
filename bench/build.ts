/**
 * Ring build time, for the sizes users run and the large case the design
 * targets (P = 65536, n = 1000, R = 3). Every placement is measured in
 * alternating rounds beside jump (the anchor) on the same members, so a busy
 * machine slows both alike; the table gives medians of wall time and of the
 * process's CPU time, and the ratio to jump. "Ring.build" adds what the Ring
 * does on top of the placement (owner arrays, loads, checksum).
 *
 *   npm run bench:build
 */
import { type PlacementName, placements } from "../src/ring/placement/index.ts";
import { Ring } from "../src/ring/ring.ts";
import { markdownTable, median } from "./stats.ts";

const sizes: [number, number, number][] = [
  [512, 10, 3],
  [2048, 100, 3],
  [65536, 1000, 3],
];
const measured: PlacementName[] = ["jump", "balanced", "modulo", "vnodes"].filter((name) =>
  Object.hasOwn(placements, name),
) as PlacementName[];

interface Sample {
  wall: number;
  cpu: number;
}

function time(run: () => unknown): Sample {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  run();
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1000 };
}

const rows: (string | number)[][] = [];
for (const [partitions, n, replicas] of sizes) {
  const members = Array.from({ length: n }, (_, i) => `node-${i}`).sort();
  const rounds = partitions > 10000 ? 5 : 9;
  const samples = new Map(measured.map((name) => [name, { bare: [] as Sample[], full: [] as Sample[] }]));
  for (let round = 0; round < rounds; round++) {
    for (const name of measured) {
      const entry = samples.get(name) as { bare: Sample[]; full: Sample[] };
      entry.bare.push(time(() => placements[name](members, partitions, replicas)));
      entry.full.push(time(() => Ring.build(members, { partitions, replicas, placement: name })));
    }
  }
  const anchor = median((samples.get("jump")?.bare ?? []).map((s) => s.cpu));
  for (const name of measured) {
    const { bare, full } = samples.get(name) as { bare: Sample[]; full: Sample[] };
    const cpu = median(bare.map((s) => s.cpu));
    rows.push([
      name,
      partitions,
      n,
      replicas,
      median(bare.map((s) => s.wall)).toFixed(1),
      cpu.toFixed(1),
      `${(cpu / anchor).toFixed(1)}×`,
      median(full.map((s) => s.wall)).toFixed(1),
    ]);
  }
}
console.log(
  markdownTable(
    ["placement", "P", "n", "R", "placement (ms)", "placement CPU (ms)", "CPU × jump", "Ring.build (ms)"],
    rows,
  ),
);
