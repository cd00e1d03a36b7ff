import test from "ava";
import { parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { type TagMatch, tagsMatch } from "../src/membership/serf/tags.ts";

// libring's own example: WatchTags {ring: /active/, zone: /^eu$/}.
const watch: [string, RegExp][] = [
  ["ring", /active/],
  ["zone", /^eu$/],
];
const members: [string, Record<string, string>][] = [
  ["both", { ring: "active", zone: "eu" }],
  ["only-ring-active", { ring: "active" }],
  ["only-zone-eu", { zone: "eu" }],
  ["ring-active-zone-us", { ring: "active", zone: "us" }],
  ["ring-draining-zone-eu", { ring: "draining", zone: "eu" }],
  ["neither", { role: "gateway" }],
  ["untagged", {}],
];
const admitted = (rule: TagMatch) => members.filter(([, tags]) => tagsMatch(watch, tags, rule)).map(([name]) => name);

test("tagMatch any (libring's rule): one matching watched tag admits a member", (t) => {
  t.deepEqual(admitted("any"), [
    "both",
    "only-ring-active",
    "only-zone-eu",
    "ring-active-zone-us",
    "ring-draining-zone-eu",
  ]);
});

test("tagMatch all (the default): every watched tag must match", (t) => {
  t.deepEqual(admitted("all"), ["both"]);
});

test("a missing tag reads as empty under all and never matches under any", (t) => {
  const optional: [string, RegExp][] = [["zone", /^(eu|)$/]];
  t.true(tagsMatch(optional, {}, "all"));
  t.false(tagsMatch(optional, {}, "any"));
  t.true(tagsMatch(optional, { zone: "" }, "any"));
});

test("with no watched tags every member is in, under either rule", (t) => {
  for (const rule of ["all", "any"] as const) t.true(tagsMatch([], { role: "x" }, rule));
});

test("membership.serf.tagMatch parses; compat libring makes any the default, an explicit value stays", (t) => {
  const serf = (raw: Record<string, unknown>) => parseConfig(raw).membership?.serf;
  t.is(serf({ membership: { serf: {} } })?.tagMatch, "all");
  t.is(serf({ membership: { serf: { tagMatch: "any" } } })?.tagMatch, "any");
  t.is(serf({ ring: { compat: "libring" }, membership: { serf: {} } })?.tagMatch, "any");
  t.is(serf({ ring: { compat: "libring" }, membership: { serf: { tagMatch: "all" } } })?.tagMatch, "all");
  const error = t.throws(() => parseConfig({ membership: { serf: { tagMatch: "some" } } }), {
    instanceOf: ConfigError,
  });
  t.is(error?.field, "membership.serf.tagMatch");
});
