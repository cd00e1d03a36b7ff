import test from "ava";
import { planFromArgs } from "../bench/movement/flags.ts";
import { fullGrid } from "../bench/movement/run.ts";

test("without flags the benchmark runs the full grid, every configuration, and writes its results", (t) => {
  t.deepEqual(planFromArgs([]), { grid: fullGrid, only: undefined, printOnly: false });
});

test("--quick runs a small grid and only prints", (t) => {
  const plan = planFromArgs(["--quick"]);
  t.true(plan.printOnly);
  t.true(plan.grid.sizes.length < fullGrid.sizes.length);
  t.false(plan.grid.partitions.includes(65536));
});

test("sizes, partitions and replicas take ranges and lists, and a grid of your own is only printed", (t) => {
  const plan = planFromArgs(["--sizes", "97-100,3", "--partitions", "2048,4096", "--only", "balanced,jump+natural"]);
  t.deepEqual(plan.grid.sizes, [97, 98, 99, 100, 3]);
  t.deepEqual(plan.grid.partitions, [2048, 4096]);
  t.deepEqual(plan.grid.replicas, fullGrid.replicas);
  t.deepEqual(plan.only, ["balanced", "jump+natural"]);
  t.true(plan.printOnly);
});

test("--only alone keeps the full grid but does not overwrite the committed results", (t) => {
  const plan = planFromArgs(["--only", "balanced"]);
  t.deepEqual(plan.grid, fullGrid);
  t.true(plan.printOnly);
});

for (const [args, flag] of [
  [["--sizes", "100-59"], "--sizes"],
  [["--sizes", "0"], "--sizes"],
  [["--partitions", "2k"], "--partitions"],
  [["--replicas", "1,,3"], "--replicas"],
  [["--bogus"], "--bogus"],
] as const) {
  test(`a bad flag is refused with its name: ${args.join(" ")}`, (t) => {
    const error = t.throws(() => planFromArgs([...args]), { instanceOf: RangeError });
    t.true(error?.message.includes(flag), error?.message);
  });
}
