import test from "ava";
import { comparisonConfigurations, orderMatters, ringrouteConfigurations } from "../bench/movement/configurations.ts";
import { balanceOf, moved } from "../bench/movement/metrics.ts";
import { scenarios } from "../bench/movement/scenarios.ts";
import { renderChart } from "../bench/movement/svg.ts";
import { TableRing } from "../bench/movement/table-ring.ts";
import { rendezvous } from "../bench/placements/rendezvous.ts";
import { movement } from "../src/ring/diff.ts";
import { sortMembers } from "../src/ring/order.ts";
import { jump } from "../src/ring/placement/jump.ts";
import { modulo } from "../src/ring/placement/modulo.ts";
import type { Placement } from "../src/ring/placement/placement.ts";
import { vnodes } from "../src/ring/placement/vnodes.ts";
import { Ring } from "../src/ring/ring.ts";

const comparison: [string, Placement][] = [
  ["modulo", modulo],
  ["vnodes", vnodes],
  ["rendezvous", rendezvous],
];
const hashed: [string, Placement][] = comparison.filter(([name]) => name !== "modulo");

const names = (n: number, prefix = "node-") =>
  sortMembers(
    Array.from({ length: n }, (_, i) => `${prefix}${i}`),
    "lexical",
  );

/** Member names of one table row. */
function row(members: readonly string[], table: Uint32Array, p: number, replicas: number): string[] {
  return Array.from({ length: replicas }, (_, r) => members[table[p * replicas + r] as number] as string);
}

for (const [name, placement] of comparison) {
  test(`${name}: the table has P·R entries, each an index of a member`, (t) => {
    for (const [n, partitions, replicas] of [
      [1, 64, 1],
      [3, 512, 3],
      [10, 2048, 3],
      [30, 512, 1],
    ] as const) {
      const table = placement(names(n), partitions, replicas);
      t.is(table.length, partitions * replicas);
      t.true(table.every((i) => i < n));
    }
  });

  test(`${name}: every partition's owners are distinct members, even with R = n`, (t) => {
    for (const [n, replicas] of [
      [3, 3],
      [5, 3],
      [4, 4],
    ] as const) {
      const table = placement(names(n), 512, replicas);
      for (let p = 0; p < 512; p++) {
        t.is(new Set(table.subarray(p * replicas, (p + 1) * replicas)).size, replicas, `partition ${p}`);
      }
    }
  });

  test(`${name}: is pure: the same members give the same table, and the input is untouched`, (t) => {
    const members = names(12);
    const copy = [...members];
    t.deepEqual(placement(members, 2048, 3), placement([...members], 2048, 3));
    t.deepEqual(members, copy);
  });

  test(`${name}: with R replicas a partition's first r owners are its owners with R = r`, (t) => {
    const members = names(9);
    const three = placement(members, 512, 3);
    for (const r of [1, 2]) {
      const fewer = placement(members, 512, r);
      for (let p = 0; p < 512; p++) t.deepEqual(row(members, fewer, p, r), row(members, three, p, 3).slice(0, r));
    }
  });
}

for (const [name, placement] of hashed) {
  test(`${name}: owners do not depend on the order members are given in`, (t) => {
    const members = names(15);
    const reversed = [...members].reverse();
    const a = placement(members, 2048, 3);
    const b = placement(reversed, 2048, 3);
    for (let p = 0; p < 2048; p++) t.deepEqual(row(members, a, p, 3), row(reversed, b, p, 3));
  });

  test(`${name}: a join moves partitions only to the newcomer, a leave only the leaver's`, (t) => {
    const before = names(20);
    const joined = [...before, "newcomer"];
    const left = before.filter((m) => m !== "node-7");
    const a = placement(before, 2048, 1);
    const j = placement(joined, 2048, 1);
    const l = placement(left, 2048, 1);
    let movedToNewcomer = 0;
    for (let p = 0; p < 2048; p++) {
      const was = row(before, a, p, 1)[0];
      const afterJoin = row(joined, j, p, 1)[0];
      if (afterJoin !== was) {
        t.is(afterJoin, "newcomer");
        movedToNewcomer++;
      }
      const afterLeave = row(left, l, p, 1)[0];
      if (afterLeave !== was) t.is(was, "node-7");
    }
    t.true(movedToNewcomer > 0, "the newcomer gets some partitions");
  });

  test(`${name}: removing a member outside a partition's owners leaves its owner list as it was`, (t) => {
    const members = names(12);
    const table = placement(members, 512, 3);
    for (const gone of ["node-0", "node-5", "node-11"]) {
      const fewer = members.filter((m) => m !== gone);
      const after = placement(fewer, 512, 3);
      for (let p = 0; p < 512; p++) {
        const owners = row(members, table, p, 3);
        if (!owners.includes(gone)) t.deepEqual(row(fewer, after, p, 3), owners);
      }
    }
  });

  test(`${name}: every member gets partitions at P = 2048, n = 30`, (t) => {
    const counts = new Array(30).fill(0);
    for (const i of placement(names(30), 2048, 1)) counts[i]++;
    t.true(counts.every((c) => c > 0));
  });
}

test("modulo: partition counts differ by at most one between members", (t) => {
  for (const n of [3, 7, 30]) {
    const counts = new Array(n).fill(0);
    for (const i of modulo(names(n), 2048, 1)) counts[i]++;
    t.true(Math.max(...counts) - Math.min(...counts) <= 1);
  }
});

test("modulo: a join moves every partition with p mod n ≠ p mod (n+1), about n/(n+1), even when the newcomer sorts last", (t) => {
  for (const n of [3, 10, 30]) {
    const members = names(n, "a-");
    const before = new TableRing(members, 2048, 1, modulo, "lexical");
    const after = new TableRing([...members, "z-last"], 2048, 1, modulo, "lexical");
    let expected = 0;
    for (let p = 0; p < 2048; p++) if (p % n !== p % (n + 1)) expected++;
    const primaries = moved(before, after).primaries;
    t.is(primaries, expected, `n = ${n}`);
    t.true(primaries / 2048 > n / (n + 1) - 0.02, `n = ${n}`);
  }
});

test("a TableRing over jump has the owners Ring.build gives with jump", (t) => {
  const members = ["web-10", "web-2", "db-1", "cache", "web-1"];
  for (const order of ["lexical", "natural"] as const) {
    const ring = Ring.build(members, { partitions: 512, replicas: 3, placement: "jump", order });
    const table = new TableRing(members, 512, 3, jump, order);
    for (let p = 0; p < 512; p++)
      t.deepEqual(
        [0, 1, 2].map((r) => table.owner(p, r)),
        ring.ownersOfPartition(p),
      );
    t.deepEqual(table.ownersOf("user-42"), ring.ownersOf("user-42"));
    t.deepEqual([...table.loads], [...ring.loads]);
  }
});

test("the bench's movement count over tables equals diff.ts movement() over Rings", (t) => {
  const before = ["a", "b", "c", "d", "e", "f"];
  const after = ["a", "c", "d", "e", "f", "g", "h"];
  const config = { partitions: 2048, replicas: 3, placement: "jump" as const };
  const expected = movement(Ring.build(before, config), Ring.build(after, config));
  const tables = moved(new TableRing(before, 2048, 3, jump, "lexical"), new TableRing(after, 2048, 3, jump, "lexical"));
  t.deepEqual(tables, expected);
  t.true(expected.primaries > 0);
});

test("balance: equal loads are 1.00 and CV 0; loads 1 and 3 are 1.5 and CV 0.5", (t) => {
  t.deepEqual(balanceOf([4, 4, 4]), { maxOverMean: 1, cv: 0 });
  t.deepEqual(balanceOf([1, 3]), { maxOverMean: 1.5, cv: 0.5 });
});

test("jump's table depends on the member order; that is why it gets a column per order", (t) => {
  t.true(orderMatters("jump"));
});

test("every file in bench/placements joins the comparison under its own name", async (t) => {
  const found = (await comparisonConfigurations()).map((c) => c.name).sort();
  t.deepEqual(found, ["rendezvous"]);
});

test("the benchmark measures the run-time placements through Ring, under the names a config uses", (t) => {
  const names = ringrouteConfigurations().map((c) => c.name);
  for (const name of ["balanced", "vnodes", "jump+lexical", "modulo+lexical"]) t.true(names.includes(name), name);
});

test("scenarios: a join adds one new name, a leave drops one member, a replacement swaps one", (t) => {
  const byId = new Map(scenarios.map((s) => [s.id, s]));
  for (const trial of byId.get("join")?.trials(10, 5) ?? []) {
    const [step] = trial.steps;
    t.is(step?.members.length, 11);
    t.deepEqual(step?.members.slice(0, 10), [...trial.start]);
    t.false(trial.start.includes(step?.members[10] as string));
    t.is(step?.optimum, 1 / 11);
  }
  for (const trial of byId.get("leave")?.trials(10, 5) ?? []) {
    const members = trial.steps[0]?.members ?? [];
    t.is(members.length, 9);
    t.true(members.every((m) => trial.start.includes(m)));
  }
  for (const trial of byId.get("replace")?.trials(10, 5) ?? []) {
    const members = trial.steps[0]?.members ?? [];
    t.is(members.length, 10);
    t.is(members.filter((m) => !trial.start.includes(m)).length, 1);
  }
});

test("scenarios: a StatefulSet of n scales out by appending web-n", (t) => {
  const [trial] = scenarios.find((s) => s.id === "scale-out")?.trials(4, 1) ?? [];
  t.deepEqual(trial?.start, ["web-0", "web-1", "web-2", "web-3"]);
  t.deepEqual(trial?.steps[0]?.members, ["web-0", "web-1", "web-2", "web-3", "web-4"]);
});

test("scenarios: a run is 20 single joins or leaves of distinct names, the same on every call", (t) => {
  const changes = scenarios.find((s) => s.id === "changes");
  const [trial] = changes?.trials(5, 1) ?? [];
  t.deepEqual(changes?.trials(5, 1), [trial]);
  t.is(trial?.steps.length, 20);
  let previous = trial?.start ?? [];
  for (const step of trial?.steps ?? []) {
    t.is(new Set(step.members).size, step.members.length);
    t.is(Math.abs(step.members.length - previous.length), 1);
    t.true(step.members.length >= 2);
    previous = step.members;
  }
});

test("the chart draws a line per configuration and the optimum in every panel", (t) => {
  const svg = renderChart({
    title: "Moved",
    subtitle: "P = 2048",
    footer: "each point: a mean",
    panels: ["join", "leave"].map((title) => ({
      title,
      series: [
        {
          name: "a",
          points: [
            [3, 0.5],
            [300, 0.4],
          ] as [number, number][],
        },
        {
          name: "b",
          points: [
            [3, 0.25],
            [300, 0.003],
          ] as [number, number][],
        },
      ],
      optimum: [
        [3, 0.25],
        [300, 1 / 301],
      ] as [number, number][],
    })),
    legend: [
      { name: "a", about: "first" },
      { name: "b", about: "second <&>" },
    ],
  });
  t.true(svg.startsWith("<svg"));
  t.is(svg.match(/<polyline /g)?.length, 2 * 3);
  t.is(svg.match(/stroke-dasharray/g)?.length, 2 + 1); // each panel's optimum and the legend's
  t.true(svg.includes("second &lt;&amp;&gt;"));
});
