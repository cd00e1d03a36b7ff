import { createHash } from "node:crypto";
import test from "ava";
import { balanced } from "../src/ring/placement/balanced.ts";
import type { BalanceFactor } from "../src/ring/placement/placement.ts";

// The tables of a few reference rings, pinned: a change that makes building
// faster must not change a single owner, or proxies on two versions disagree.
// Digests are of the table's little-endian bytes, taken from the placement as
// first released (f = 1.05) and when the balance factor became a setting.

const digest = (table: Uint32Array) =>
  createHash("sha256")
    .update(Buffer.from(table.buffer, table.byteOffset, table.byteLength))
    .digest("hex")
    .slice(0, 16);

const names = (n: number, name: (i: number) => string) => Array.from({ length: n }, (_, i) => name(i)).sort();

const cases: [string, string[], number, number, BalanceFactor, string][] = [
  ["3 members, P = 7, R = 3, f = 1.05", ["node-a", "node-b", "node-c"], 7, 3, 1.05, "4e645612832673a0"],
  [
    "10 members, P = 512, R = 3, f = 1.05",
    names(10, (i) => `ip-10-4-${i}-${200 - i}`),
    512,
    3,
    1.05,
    "6d18a04473fe0894",
  ],
  ["100 members, P = 2048, R = 1, f = 1.05", names(100, (i) => `node-${i}`), 2048, 1, 1.05, "f796863adc44ea29"],
  [
    "37 Unicode names, P = 4096, R = 2, f = 1.05",
    names(37, (i) => `ключ-${i}-日本`),
    4096,
    2,
    1.05,
    "ad09a1825c57d934",
  ],
  ["1000 members, P = 65536, R = 3, f = 1.05", names(1000, (i) => `node-${i}`), 65536, 3, 1.05, "e387a0b4f20a64bf"],
  ["100 members, P = 2048, R = 3, f = 1.25", names(100, (i) => `node-${i}`), 2048, 3, 1.25, "a1dc0a9324773681"],
  ["59 members, P = 2048, R = 1, auto", names(59, (i) => `web-${i}`), 2048, 1, "auto", "d970541be8c5cb03"],
  ["1000 members, P = 65536, R = 3, f = 1.25", names(1000, (i) => `node-${i}`), 65536, 3, 1.25, "795ccc323bb9727d"],
];

for (const [what, members, partitions, replicas, balanceFactor, expected] of cases) {
  test(`the balanced table of ${what} is unchanged`, (t) => {
    t.is(digest(balanced(members, partitions, replicas, { balanceFactor, vnodes: 150 })), expected);
  });
}
