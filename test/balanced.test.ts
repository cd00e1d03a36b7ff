import test from "ava";
import { balanced } from "../src/ring/placement/balanced.ts";

const PARTITIONS = 2048;

/** Deterministic 32-bit generator (mulberry32), so every run draws the same member sets. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function memberNames(random: () => number, count: number): string[] {
  const names = new Set<string>();
  while (names.size < count) names.add(`node-${Math.floor(random() * 2 ** 40).toString(36)}`);
  return [...names].sort();
}

/** The table as member names, so tables over different member lists compare. */
function owners(members: string[], partitions: number, replicas = 1): string[] {
  return Array.from(balanced(members, partitions, replicas), (index) => members[index] as string);
}

function loads(table: Uint32Array, members: number, replicas: number, rank: number): number[] {
  const counts = new Int32Array(members);
  for (let p = rank; p < table.length; p += replicas) {
    const member = table[p] as number;
    counts[member] = (counts[member] as number) + 1;
  }
  return [...counts];
}

function moved(before: string[], after: string[]): number {
  let count = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) count++;
  return count;
}

const balanceBound = (partitions: number, n: number) => Math.max(Math.ceil(partitions / n), (1.05 * partitions) / n);

/**
 * Mean primaries moved by a random join and by a random leave, as multiples of
 * the optimum (P/(n+1) for a join into n members, P/n for a leave from n).
 */
function movement(n: number, samples: number): { join: number; leave: number } {
  const random = generator(0x5eed + n);
  let join = 0;
  let leave = 0;
  for (let s = 0; s < samples; s++) {
    const grown = memberNames(random, n + 1);
    const joiner = Math.floor(random() * (n + 1));
    const members = grown.filter((_, i) => i !== joiner);
    const leaver = Math.floor(random() * n);
    const shrunk = members.filter((_, i) => i !== leaver);
    const before = owners(members, PARTITIONS);
    join += moved(before, owners(grown, PARTITIONS)) / (PARTITIONS / (n + 1));
    leave += moved(before, owners(shrunk, PARTITIONS)) / (PARTITIONS / n);
  }
  return { join: join / samples, leave: leave / samples };
}

test("no member holds more than max(ceil(P/n), 1.05·P/n) primaries, for n from 3 to 100", (t) => {
  const random = generator(1);
  for (let n = 3; n <= 100; n++) {
    for (let s = 0; s < 3; s++) {
      const members = memberNames(random, n);
      const most = Math.max(...loads(balanced(members, PARTITIONS, 1), n, 1, 0));
      t.true(most <= balanceBound(PARTITIONS, n), `n=${n}: a member holds ${most}`);
    }
  }
});

for (const n of [3, 4, 5, 7, 10, 16, 23, 30]) {
  test(`a random join or leave among ${n} members moves at most 1.5× the optimum`, (t) => {
    const { join, leave } = movement(n, 8);
    t.true(join <= 1.5, `join moved ${join.toFixed(3)}× the optimum`);
    t.true(leave <= 1.5, `leave moved ${leave.toFixed(3)}× the optimum`);
  });
}

// Measured (6 samples): at most 1.68× up to n = 58, 1.97× up to n = 68, and
// 1.6–2.0× at the n above that where the cap keeps its whole part.
for (const n of [40, 45, 50, 55, 60, 65, 73, 85, 92, 100]) {
  test(`a random join or leave among ${n} members moves at most 2× the optimum`, (t) => {
    const { join, leave } = movement(n, 6);
    t.true(join <= 2, `join moved ${join.toFixed(3)}× the optimum`);
    t.true(leave <= 2, `leave moved ${leave.toFixed(3)}× the optimum`);
  });
}

// Known gap, from about n = 69 on: where the balance bound's whole part drops
// (22 at n = 97, 21 at n = 98, leaving 10 spare slots) every member filled to
// the old cap must shed one, and with so little slack bounce chains run long.
// Measured (6 samples): a leave moves 2.5× the optimum at n = 77, a join 3.4× at
// n = 89 and 4.0× at n = 97. The movement benchmark (48 samples a size) finds
// the join or the leave above 2× at 20 of the 32 n from 69 to 100, worst 3.9×.
for (const n of [77, 89, 97]) {
  test.failing(`a random join or leave among ${n} members moves at most 2× the optimum`, (t) => {
    const { join, leave } = movement(n, 6);
    t.true(join <= 2, `join moved ${join.toFixed(3)}× the optimum`);
    t.true(leave <= 2, `leave moved ${leave.toFixed(3)}× the optimum`);
  });
}

test("the owners are a pure function of the member set: any input order gives the same owners by name", (t) => {
  const random = generator(2);
  const members = memberNames(random, 37);
  const expected = owners(members, PARTITIONS, 3);
  const orders = [[...members].reverse(), shuffled(members, generator(3)), shuffled(members, generator(4))];
  for (const order of orders) {
    t.notDeepEqual(order, members, "a different input order");
    t.deepEqual(owners(order, PARTITIONS, 3), expected, order.slice(0, 3).join());
  }
});

/** A Fisher-Yates shuffle driven by `random`. */
function shuffled(names: string[], random: () => number): string[] {
  const out = [...names];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as string, out[i] as string];
  }
  return out;
}

test("a member joining in the middle of the order only takes partitions, it does not reshuffle the rest", (t) => {
  const members = ["node-a", "node-c", "node-e", "node-g", "node-i"];
  const before = owners(members, PARTITIONS);
  const after = owners(["node-a", "node-c", "node-d", "node-e", "node-g", "node-i"], PARTITIONS);
  const toJoiner = after.filter((name, p) => name === "node-d" && before[p] !== name).length;
  t.true(moved(before, after) <= 1.25 * toJoiner, "partitions moved between old members");
});

test("each partition's replicas are distinct members, and every rank is balanced", (t) => {
  const random = generator(3);
  for (const [n, replicas] of [
    [3, 2],
    [5, 3],
    [10, 3],
    [30, 3],
    [100, 3],
  ] as const) {
    const members = memberNames(random, n);
    const table = balanced(members, PARTITIONS, replicas);
    for (let p = 0; p < PARTITIONS; p++) {
      const row = new Set(table.subarray(p * replicas, (p + 1) * replicas));
      t.is(row.size, replicas, `n=${n}: partition ${p} repeats a member`);
    }
    for (let rank = 0; rank < replicas; rank++) {
      const most = Math.max(...loads(table, n, replicas, rank));
      t.true(most <= balanceBound(PARTITIONS, n), `n=${n}: rank ${rank} gives a member ${most}`);
    }
  }
});

test("as many replicas as members: every row is a permutation of the members", (t) => {
  const members = memberNames(generator(4), 6);
  const table = balanced(members, 512, 6);
  for (let p = 0; p < 512; p++) t.deepEqual([...table.subarray(p * 6, p * 6 + 6)].sort(), [0, 1, 2, 3, 4, 5]);
});

test("edge cases: one partition, one member, no replicas", (t) => {
  t.deepEqual([...balanced(["only"], 4, 1)], [0, 0, 0, 0]);
  const single = balanced(["a", "b", "c"], 1, 2);
  t.is(single.length, 2);
  t.not(single[0], single[1]);
  t.is(balanced(["a", "b"], 8, 0).length, 0);
  t.is(balanced(["a", "b"], 0, 2).length, 0);
  t.throws(() => balanced(["a"], 8, 2), { instanceOf: RangeError });
});
