/**
 * Ring build time, for the sizes users run and the large case the design
 * targets (P = 65536, n = 1000, R = 3). Every placement is measured in
 * alternating rounds beside jump (the anchor) on the same members, so a busy
 * machine slows both alike; the table gives medians of wall time and of the
 * process's CPU time, and the ratio to jump. "Ring.build" adds what the Ring
 * does on top of the placement (owner arrays, loads, checksum).
 *
 * Then the default (balanced, factor 1.25) at P = 65536 for n = 1 to 5,000
 * members: CPU time of Ring.build, the memory the ring keeps, and the peak
 * the build adds to the process, each build in a fresh process (so the peak
 * is its own), in alternating rounds.
 *
 *   npm run bench:build                 both tables
 *   npm run bench:build -- --scale      the default at scale only
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type PlacementName, placements } from "../src/ring/placement/index.ts";
import { Ring } from "../src/ring/ring.ts";
import { markdownTable, median } from "./stats.ts";

const scaleSizes = [1, 10, 100, 1000, 5000];
const scalePartitions = 65536;

/** In a child: one default build at n members; prints CPU ms, retained and peak bytes as JSON. */
if (process.argv[2] === "--one") {
  const n = Number(process.argv[3]);
  const members = Array.from({ length: n }, (_, i) => `node-${i}`);
  const gc = (globalThis as { gc?: () => void }).gc as () => void;
  gc();
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external; // external includes array buffers
  };
  const before = used();
  const rssBefore = process.memoryUsage().rss;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const ring = Ring.build(members, { partitions: scalePartitions });
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  const spent = process.cpuUsage(cpu);
  const peak = process.resourceUsage().maxRSS * 1024 - rssBefore;
  gc();
  gc();
  const retained = used() - before;
  process.stdout.write(
    JSON.stringify({ cpu: (spent.user + spent.system) / 1000, wall, retained, peak, size: ring.size, cap: ring.cap }),
  );
  process.exit(0);
}

function scaleTable(rounds: number): string {
  const self = fileURLToPath(import.meta.url);
  const samples = new Map(
    scaleSizes.map((n) => [n, [] as { cpu: number; wall: number; retained: number; peak: number }[]]),
  );
  let cap = new Map<number, number>();
  for (let round = 0; round < rounds; round++) {
    for (const n of round % 2 === 0 ? scaleSizes : [...scaleSizes].reverse()) {
      const child = spawnSync(process.execPath, ["--import=tsx", "--expose-gc", self, "--one", String(n)], {
        encoding: "utf8",
      });
      if (child.status !== 0) throw new Error(`build at n = ${n} failed: ${child.stderr}`);
      const result = JSON.parse(child.stdout);
      samples.get(n)?.push(result);
      cap = cap.set(n, result.cap);
    }
  }
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  return markdownTable(
    ["n", "P", "cap", "Ring.build CPU (ms)", "wall (ms)", "kept by the ring (MB)", "peak added (MB)"],
    scaleSizes.map((n) => {
      const xs = samples.get(n) ?? [];
      return [
        n,
        scalePartitions,
        cap.get(n) ?? "–",
        median(xs.map((x) => x.cpu)).toFixed(0),
        median(xs.map((x) => x.wall)).toFixed(0),
        mb(median(xs.map((x) => x.retained))),
        mb(median(xs.map((x) => Math.max(0, x.peak)))),
      ];
    }),
  );
}

if (process.argv.includes("--scale")) {
  console.log(scaleTable(3));
  process.exit(0);
}

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
console.log("");
console.log(`The default, balanced (f = 1.25), at P = ${scalePartitions}, R = 3: medians of 3 fresh processes`);
console.log(scaleTable(3));
