import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { ringroute } from "./helpers/cli.ts";
import { goVectors } from "./helpers/vectors.ts";

const lines = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));

test("lookup prints one JSON line a key with libring's owners, as Go computes them", async (t) => {
  for (const c of goVectors.cases) {
    const flags = ["--members", c.members.join(","), "--partitions", `${c.partitions}`, "--replicas", `${c.replicas}`];
    const run = await ringroute(["lookup", ...flags, "--hash", c.hash, "--", ...c.keys]);
    t.is(run.code, 0, run.stderr);
    t.deepEqual(
      lines(run.stdout),
      c.keys.map((key, i) => ({ key, partition: c.partition[i], owners: c.owners[i] })),
    );
  }
});

test("lookup reads keys from standard input, one a line, when none are given", async (t) => {
  const run = await ringroute(["lookup", "--members", "a,b,c", "--replicas", "2"], "user-1\nuser-2\r\n/ключ\n");
  t.is(run.code, 0, run.stderr);
  const ring = Ring.build(["a", "b", "c"], { replicas: 2 });
  t.deepEqual(
    lines(run.stdout),
    ["user-1", "user-2", "/ключ"].map((key) => ({ key, partition: ring.partitionOf(key), owners: ring.ownersOf(key) })),
  );
});

test("a members file holds one name a line, commas and spaces included", async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), "ringroute-")), "members.txt");
  const names = ["db, primary", "cache 1", "web-3"];
  writeFileSync(file, `${names.join("\n")}\n\n`);
  const run = await ringroute(["lookup", "--members-file", file, "--placement", "balanced", "--order", "natural", "k"]);
  t.is(run.code, 0, run.stderr);
  const ring = Ring.build(names, { placement: "balanced", order: "natural" });
  t.deepEqual(lines(run.stdout), [{ key: "k", partition: ring.partitionOf("k"), owners: ring.ownersOf("k") }]);
});

test("plan --json counts what moves when a member joins and another leaves", async (t) => {
  const run = await ringroute(["plan", "--members", "a,b,c,d", "--add", "e", "--remove", "b", "--json"]);
  t.is(run.code, 0, run.stderr);
  const plan = JSON.parse(run.stdout);
  const before = Ring.build(["a", "b", "c", "d"]);
  const after = Ring.build(["a", "c", "d", "e"]);
  let primaries = 0;
  let slots = 0;
  for (let p = 0; p < 512; p++) {
    for (let r = 0; r < 3; r++) if (before.owner(p, r) !== after.owner(p, r)) slots++;
    if (before.owner(p, 0) !== after.owner(p, 0)) primaries++;
  }
  t.is(plan.partitions, 512);
  t.is(plan.moved_primaries, primaries);
  t.is(plan.moved_replica_slots, slots);
  // b's partitions must move, and e must receive a fair share: whichever is more.
  t.is(plan.optimal_primaries, Math.max(before.loads.get("b")?.[0] ?? 0, Math.ceil(512 / 4)));
  t.deepEqual(Object.keys(plan.members), ["a", "b", "c", "d", "e"]);
  t.is(plan.members.b.after, 0);
  t.is(plan.members.e.before, 0);
  for (const m of ["a", "c", "d", "e"]) t.is(plan.members[m].after, after.loads.get(m)?.[0]);
});

test("plan without --json prints a table a person can read", async (t) => {
  const run = await ringroute(["plan", "--members", "web-0,web-1,web-2", "--order", "natural", "--add", "web-3"]);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /moved primaries: +\d+ \(\d+\.\d%\)/);
  t.regex(run.stdout, /^web-3 +0 +\d+$/m);
});

test("bad input exits 2 with one line naming the flag", async (t) => {
  const cases: [string[], RegExp][] = [
    [["lookup", "k"], /--members: required/],
    [["lookup", "--members", "", "k"], /--members: at least one member/],
    [["lookup", "--members", "a,,b", "k"], /--members: empty member name/],
    [["lookup", "--members", "a,b,a", "k"], /--members: duplicate member "a"/],
    [["lookup", "--members", "a", "--partitions", "0", "k"], /--partitions: must be a positive integer, got "0"/],
    [["lookup", "--members", "a", "--partitions", "abc", "k"], /--partitions: must be a positive integer, got "abc"/],
    [["lookup", "--members", "a", "--replicas", "-1", "k"], /--replicas: /],
    [["lookup", "--members", "a", "--hash", "md5", "k"], /--hash: must be one of fnv1a32, fnv1a64, got "md5"/],
    [["lookup", "--members", "a", "--placement", "ketama", "k"], /--placement: must be one of/],
    [["lookup", "--members", "a", "--order", "random", "k"], /--order: must be one of/],
    [["lookup", "--members", "a", "--bogus", "k"], /--bogus: unknown option/],
    [["lookup", "--members-file", "/nonexistent/members", "k"], /--members-file: cannot read/],
    [["plan", "--members", "a,b", "--add", "a"], /--add: "a" is already a member/],
    [["plan", "--members", "a,b", "--remove", "z"], /--remove: "z" is not a member/],
    [["plan", "--members", "a", "--remove", "a"], /--remove: would leave no members/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const run = await ringroute(args);
    t.is(run.code, 2, args.join(" "));
    t.regex(run.stderr, message, args.join(" "));
    t.is(run.stderr.trim().split("\n").length, 1, `one line for ${args.join(" ")}`);
    t.is(run.stdout, "");
  }
});
