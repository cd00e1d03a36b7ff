/**
 * What one member leaving costs under each placement: `ringroute plan
 * --remove w02` over members w01 … wNN at P = 512 (the defaults), primaries
 * moved as a share of P and against the optimum (the leaver's share). The
 * README's placement table is this script's output.
 *
 *   npm run bench:remove-one
 *   npm run bench:remove-one -- --sizes 3,5,10,20,50 --partitions 2048
 */
import { parseArgs } from "node:util";
import { planChange } from "../src/commands/plan.ts";
import { Ring } from "../src/ring/ring.ts";
import { markdownTable } from "./stats.ts";

const { values } = parseArgs({
  options: { sizes: { type: "string", default: "3,5,10,20" }, partitions: { type: "string", default: "512" } },
});
const sizes = (values.sizes as string).split(",").map(Number);
const partitions = Number(values.partitions);
const settings = [
  { label: "jump (libring)", ring: { placement: "jump" as const } },
  { label: "balanced (f 1.25, default)", ring: { placement: "balanced" as const, balanceFactor: 1.25 } },
];

const rows = sizes.map((n) => {
  const members = Array.from({ length: n }, (_, i) => `w${String(i + 1).padStart(2, "0")}`);
  return [
    `n = ${n}`,
    ...settings.map(({ ring }) => {
      const plan = planChange(Ring.build(members, { partitions, ...ring }), [], ["w02"]);
      const share = ((100 * plan.moved_primaries) / partitions).toFixed(1);
      return `${share} % of primaries moved, ${(plan.moved_primaries / plan.optimal_primaries).toFixed(2)}× optimum`;
    }),
  ];
});
console.log(
  markdownTable(
    [`remove one member (\`plan --remove w02\`), ${partitions} partitions`, ...settings.map((s) => s.label)],
    rows,
  ),
);
