import test from "ava";
import { loadConfig } from "../src/commands/flags.ts";
import { planChange } from "../src/commands/plan.ts";
import { ringFromCommandLine } from "../src/commands/ring-flags.ts";
import { parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { Ring } from "../src/ring/ring.ts";
import { ringroute } from "./helpers/cli.ts";
import { goVectors } from "./helpers/vectors.ts";

/** The ring `lookup` builds from these flag values (no file, no variables). */
const ringFromFlags = (values: Record<string, string>) => ringFromCommandLine(values, { env: {} });

const members = Array.from({ length: 10 }, (_, i) => `node-${i}`);

test("balanceFactor is a factor, a percent as HAProxy and Envoy write it, or auto; the factor is canonical", (t) => {
  const factor = (value: unknown) => parseConfig({ ring: { balanceFactor: value } }).ring.balanceFactor;
  t.is(factor(1.25), 1.25);
  t.is(factor("1.1"), 1.1);
  t.is(factor(125), 1.25);
  t.is(factor("150"), 1.5);
  t.is(factor("auto"), "auto");
  t.is(parseConfig({}).ring.balanceFactor, 1.25, "the default");
});

test("a bad balance factor is a config error naming the field", (t) => {
  for (const value of [0.9, 0, -1, "x", "", null, 20000, true]) {
    const error = t.throws(() => parseConfig({ ring: { balanceFactor: value } }), { instanceOf: ConfigError });
    t.is(error?.field, "ring.balanceFactor", `${value}`);
  }
  t.is(
    t.throws(() => ringFromFlags({ members: "a,b", "balance-factor": "0.5" }))?.message.split(":")[0],
    "ring.balanceFactor",
  );
});

test("--balance-factor and RINGROUTE_BALANCE_FACTOR set ring.balanceFactor; the flag wins", (t) => {
  t.is(loadConfig([], { env: { RINGROUTE_BALANCE_FACTOR: "auto" } }).ring.balanceFactor, "auto");
  t.is(loadConfig(["--balance-factor", "1.5"], { env: { RINGROUTE_BALANCE_FACTOR: "auto" } }).ring.balanceFactor, 1.5);
  t.is(ringFromFlags({ members: members.join(","), placement: "balanced", "balance-factor": "110" }).cap, 56);
});

test("the balance factor changes a balanced ring's table and checksum, and leaves a jump ring's alone", (t) => {
  const balanced = (balanceFactor: number | "auto") =>
    Ring.build(
      Array.from({ length: 97 }, (_, i) => `node-${i}`),
      { partitions: 2048, placement: "balanced", balanceFactor },
    );
  const [tight, loose] = [balanced(1.05), balanced(1.5)];
  t.not(tight.checksum, loose.checksum);
  t.is(tight.cap, 22);
  t.is(loose.cap, 31);
  const most = (ring: Ring) => Math.max(...[...ring.loads.values()].map((load) => load[0] as number));
  t.true(most(tight) <= 22);
  t.true(most(loose) > 22, "the looser cap is used");
  t.is(balanced(1.25).checksum, Ring.build(tight.members, { partitions: 2048, placement: "balanced" }).checksum);

  const jump = (balanceFactor: number) => Ring.build(members, { balanceFactor, placement: "jump" });
  t.is(jump(1.05).checksum, jump(2).checksum);
  t.is(jump(2).cap, undefined);
});

test("plan shows the cap before and after the change", async (t) => {
  const before = Ring.build(members, { partitions: 2048, placement: "balanced", balanceFactor: "auto" });
  const plan = planChange(before, ["node-10"], []);
  t.is(plan.balance_factor, "auto");
  // 204.8 + 14.3 before, 186.2 + 13.6 after.
  t.deepEqual(plan.cap, { before: 219, after: 199 });
  t.is(planChange(Ring.build(members, { placement: "jump" }), ["node-10"], []).cap, null);

  const run = await ringroute([
    "plan",
    "--members",
    members.join(","),
    "--partitions",
    "2048",
    "--placement",
    "balanced",
    "--balance-factor",
    "125",
    "--add",
    "node-10",
  ]);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /balance factor 1\.25: at most 256 primaries a member before, 232 after/);
});

test("compat libring sets fnv1a64, lexical order and jump; a field that contradicts it is an error naming it", (t) => {
  const ring = parseConfig({ ring: { compat: "libring" } }).ring;
  t.like(ring, { compat: "libring", hash: "fnv1a64", order: "lexical", placement: "jump" });
  t.like(parseConfig({ ring: { compat: "libring", hash: "fnv1a64" } }).ring, { hash: "fnv1a64" });
  for (const [field, value] of [
    ["hash", "fnv1a32"],
    ["order", "natural"],
    ["placement", "balanced"],
  ]) {
    const error = t.throws(() => parseConfig({ ring: { compat: "libring", [field as string]: value } }), {
      instanceOf: ConfigError,
    });
    t.is(error?.field, `ring.${field}`);
  }
  t.is(t.throws(() => parseConfig({ ring: { compat: "ringpop" } }))?.message.split(":")[0], "ring.compat");
  t.is(
    t.throws(() => ringFromFlags({ members: "a", compat: "libring", hash: "fnv1a32" }))?.message.split(":")[0],
    "ring.hash",
  );
  t.is(Ring.build(members, { compat: "libring" }).config.hash, "fnv1a64");
});

test("lookup --compat libring agrees with libring's Go code on the reference vectors", async (t) => {
  const libring = goVectors.cases.filter((c) => c.hash === "fnv1a64");
  t.true(libring.length >= 4);
  const runs = await Promise.all(
    libring.map((c) => {
      const flags = [
        "--members",
        c.members.join(","),
        "--partitions",
        `${c.partitions}`,
        "--replicas",
        `${c.replicas}`,
      ];
      return ringroute(["lookup", ...flags, "--compat", "libring", "--", ...c.keys]);
    }),
  );
  for (const [i, c] of libring.entries()) {
    const run = runs[i] as Awaited<ReturnType<typeof ringroute>>;
    t.is(run.code, 0, run.stderr);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    t.deepEqual(
      lines,
      c.keys.map((key, k) => ({ key, partition: c.partition[k], owners: c.owners[k] })),
    );
  }
});

test("with the defaults (fnv1a32), most keys land on other partitions than libring's code puts them", (t) => {
  const c = goVectors.cases.find(
    (v) => v.hash === "fnv1a64" && v.partitions === 512,
  ) as (typeof goVectors.cases)[number];
  const ring = Ring.build(c.members, { partitions: c.partitions, replicas: c.replicas });
  const same = c.keys.filter((key, i) => ring.partitionOf(key) === c.partition[i]).length;
  t.true(same <= c.keys.length / 4, `${same} of ${c.keys.length} agree`);
});

test("placement modulo and vnodes run from config and flags; vnodes changes a vnodes ring's checksum", (t) => {
  const config = parseConfig({ ring: { placement: "vnodes", vnodes: "40" } }).ring;
  t.like(config, { placement: "vnodes", vnodes: 40 });
  const ring = (vnodes: number) => Ring.build(members, { placement: "vnodes", vnodes });
  t.not(ring(40).checksum, ring(150).checksum);
  t.is(ringFromFlags({ members: members.join(","), placement: "vnodes", vnodes: "150" }).checksum, ring(150).checksum);
  const modulo = Ring.build(members, { placement: "modulo", replicas: 2 });
  t.deepEqual(modulo.ownersOfPartition(13), ["node-3", "node-4"]);
  t.is(t.throws(() => parseConfig({ ring: { vnodes: 0 } }))?.message.split(":")[0], "ring.vnodes");
});

test("a library user can pass a Placement function of their own; its name goes into the checksum", (t) => {
  // Every partition's owners: the members in ring order from p mod n, like modulo.
  const ownRule = (list: readonly string[], partitions: number, replicas: number) => {
    const table = new Uint32Array(partitions * replicas);
    for (let p = 0; p < partitions; p++)
      for (let r = 0; r < replicas; r++) table[p * replicas + r] = (p + r) % list.length;
    return table;
  };
  const ring = Ring.build(members, { placement: ownRule, replicas: 2 });
  t.is(ring.placementName, "ownRule");
  t.deepEqual(ring.ownersOfPartition(13), ["node-3", "node-4"]);
  const builtIn = Ring.build(members, { placement: "modulo", replicas: 2 });
  t.not(ring.checksum, builtIn.checksum, "same table, other placement name");
  const renamed = Object.defineProperty((...args: Parameters<typeof ownRule>) => ownRule(...args), "name", {
    value: "zoneAware",
  });
  t.not(Ring.build(members, { placement: renamed, replicas: 2 }).checksum, ring.checksum);
  t.is(
    Ring.build(["node-2", ...members.filter((m) => m !== "node-2")], { placement: ownRule, replicas: 2 }).checksum,
    ring.checksum,
  );

  for (const name of ["", "jump"]) {
    const unnamed = Object.defineProperty((...args: Parameters<typeof ownRule>) => ownRule(...args), "name", {
      value: name,
    });
    t.is(t.throws(() => Ring.build(members, { placement: unnamed }), { instanceOf: ConfigError })?.field, "placement");
  }
});
