import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { check, checkFiles, placementNotice, summary } from "../src/commands/check.ts";
import { commandHelp } from "../src/commands/command.ts";
import { loadConfig, parseCommandLine } from "../src/commands/flags.ts";
import { lookup, lookupTarget } from "../src/commands/lookup.ts";
import { plan, planChange } from "../src/commands/plan.ts";
import { ringFromCommandLine } from "../src/commands/ring-flags.ts";
import { serve } from "../src/commands/serve.ts";
import { defaultConfig, parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { membershipSourceKinds } from "../src/membership/config.ts";
import { Ring } from "../src/ring/ring.ts";
import { type Run, ringroute } from "./helpers/cli.ts";
import { goVectors } from "./helpers/vectors.ts";

const lines = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));

test("lookup --placement jump prints one JSON line a key with libring's owners, as Go computes them", async (t) => {
  for (const c of goVectors.cases) {
    const flags = ["--members", c.members.join(","), "--partitions", `${c.partitions}`, "--replicas", `${c.replicas}`];
    flags.push("--placement", "jump");
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

/** The ring `lookup ARGS` would use, built in-process (a spawned CLI costs seconds on a busy machine). */
function ringOf(args: string[], env: Record<string, string> = {}): Ring {
  return ringFromCommandLine(parseCommandLine(args, lookup.flags, true).values, { env });
}

test("--members-file of lookup and plan also takes a plain list of names, one a line (kubectl get pods -o name)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-"));
  const ring = Ring.build(["web-0", "web-1", "web-10", "web-2"], { order: "natural" });
  const lists: [string, string][] = [
    ["names.txt", "web-0\nweb-1\nweb-10\nweb-2\n"],
    ["commented.txt", "# the pool\nweb-0\n\n  web-1  \nweb-10\r\nweb-2"],
    ["kubectl.txt", "pod/web-0\npod/web-1\npod/web-10\npod/web-2\n"],
  ];
  for (const [name, text] of lists) {
    const file = join(dir, name);
    writeFileSync(file, text);
    t.deepEqual(ringOf(["--members-file", file, "--order", "natural"]).table, ring.table, name);
  }
  const duplicate = join(dir, "duplicate.txt");
  writeFileSync(duplicate, "a\nb\na\n");
  t.regex(t.throws(() => ringOf(["--members-file", duplicate]))?.message ?? "", /^--members-file: .*"a"/);
  const file = join(dir, "names.txt");
  const [looked, planned] = await Promise.all([
    ringroute(["lookup", "--members-file", file, "--order", "natural", "k"]),
    ringroute(["plan", "--members-file", file, "--order", "natural", "--add", "web-3", "--json"]),
  ]);
  t.is(looked.code, 0, looked.stderr);
  t.deepEqual(lines(looked.stdout), [{ key: "k", partition: ring.partitionOf("k"), owners: ring.ownersOf("k") }]);
  t.is(planned.code, 0, planned.stderr);
  t.deepEqual(JSON.parse(planned.stdout).added, ["web-3"]);
});

test("--members-file reads the file source's format: name url lines, YAML or JSON", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-"));
  const names = ["cache-1", "db-primary", "web-3"];
  const files: [string, string][] = [
    ["members.txt", `# name url\n${names.map((n, i) => `${n} http://10.0.0.${i}:80`).join("\n")}\n\n`],
    ["members.yaml", `members:\n${names.map((n) => `  - { name: ${n}, url: "http://h:1" }`).join("\n")}\n`],
    ["members.json", JSON.stringify(names.map((name) => ({ name, url: "http://h:1" })))],
  ];
  const ring = Ring.build(names, { placement: "balanced", order: "natural" });
  for (const [name, text] of files) {
    const file = join(dir, name);
    writeFileSync(file, text);
    const args = ["--members-file", file, "--placement", "balanced", "--order", "natural"];
    t.deepEqual(ringOf(args).table, ring.table, name);
  }
  const run = await ringroute([
    "lookup",
    "--members-file",
    join(dir, "members.txt"),
    "--placement",
    "balanced",
    "--order",
    "natural",
    "k",
  ]);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(lines(run.stdout), [{ key: "k", partition: ring.partitionOf("k"), owners: ring.ownersOf("k") }]);
});

test("lookup and plan read ring settings and members from --config and RINGROUTE_*, flags winning", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-"));
  const config = join(dir, "ringroute.yaml");
  writeFileSync(
    config,
    [
      "ring: { partitions: 1024, replicas: 2, hash: fnv1a64 }",
      "membership:",
      "  static:",
      "    members:",
      '      - { name: a, url: "http://127.0.0.1:1" }',
      '      - { name: b, url: "http://127.0.0.1:2" }',
      '      - { name: c, url: "http://127.0.0.1:3" }',
      "",
    ].join("\n"),
  );
  const same = (actual: Ring, expected: Ring) => t.is(actual.checksum, expected.checksum);
  same(ringOf(["--config", config]), Ring.build(["a", "b", "c"], { partitions: 1024, replicas: 2, hash: "fnv1a64" }));
  same(
    ringOf([], { RINGROUTE_CONFIG: config }),
    Ring.build(["a", "b", "c"], { partitions: 1024, replicas: 2, hash: "fnv1a64" }),
  );
  same(
    ringOf([], { RINGROUTE_PARTITIONS: "2048", RINGROUTE_MEMBERS: "x=http://h:1,y=http://h:2" }),
    Ring.build(["x", "y"], { partitions: 2048 }),
  );
  same(
    ringOf(["--config", config, "--partitions", "64", "--members", "p,q"], { RINGROUTE_PARTITIONS: "2048" }),
    Ring.build(["p", "q"], { partitions: 64, replicas: 2, hash: "fnv1a64" }),
  );
  const members = join(dir, "members.txt");
  writeFileSync(members, "m1 http://h:1\nm2 http://h:2\n");
  const fileSource = join(dir, "file-source.yaml");
  writeFileSync(fileSource, `membership:\n  file: { path: ${JSON.stringify(members)} }\n`);
  same(ringOf(["--config", fileSource]), Ring.build(["m1", "m2"]));

  // The process reads the variables it is started with (the issue's example: 1024 partitions, not 512).
  const run = await ringroute(["lookup", "k"], "", {
    RINGROUTE_PARTITIONS: "1024",
    RINGROUTE_MEMBERS: "x=http://h:1,y=http://h:2",
  });
  t.is(run.code, 0, run.stderr);
  const ring = Ring.build(["x", "y"], { partitions: 1024 });
  t.deepEqual(lines(run.stdout), [{ key: "k", partition: ring.partitionOf("k"), owners: ring.ownersOf("k") }]);
});

test("lookup --target prints the key the proxy derives from a request target under the config's key.from, then its owners", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-"));
  const config = join(dir, "ringroute.yaml");
  writeFileSync(
    config,
    'key: { from: "regex:^/tenants/([^/]+)" }\nmembership:\n  static:\n    members:\n      - { name: a, url: "http://127.0.0.1:1" }\n      - { name: b, url: "http://127.0.0.1:2" }\n',
  );
  const ring = Ring.build(["a", "b"]);
  // The dot-segments go before the pattern is matched, as for the request the member receives.
  const run = await ringroute(["lookup", "--config", config, "--target", "/x/../tenants/acme/orders?page=2"]);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(lines(run.stdout), [
    {
      target: "/x/../tenants/acme/orders?page=2",
      key: "acme",
      partition: ring.partitionOf("acme"),
      owners: ring.ownersOf("acme"),
    },
  ]);
  // Keys given as arguments are still hashed as given.
  const plain = await ringroute(["lookup", "--config", config, "/x/../tenants/acme"]);
  const raw = "/x/../tenants/acme";
  t.deepEqual(lines(plain.stdout), [{ key: raw, partition: ring.partitionOf(raw), owners: ring.ownersOf(raw) }]);
});

test("lookup --target under key.from path, query and the refusals the proxy would answer", (t) => {
  const ring = Ring.build(["a", "b", "c"]);
  const key = (from: string, missing: "reject" | "any" = "reject") => parseConfig({ key: { from, missing } }).key;
  const owners = (k: string) => ({ key: k, partition: ring.partitionOf(k), owners: ring.ownersOf(k) });
  t.deepEqual(lookupTarget("/a/./b/../users/%34%32?x=1", key("path"), ring), {
    target: "/a/./b/../users/%34%32?x=1",
    ...owners("/a/users/42"),
  });
  t.deepEqual(lookupTarget("http://elsewhere/x/../y", key("path"), ring), {
    target: "http://elsewhere/x/../y",
    ...owners("/y"),
  });
  t.deepEqual(lookupTarget("/p/../q?user=z%C3%B6e", key("query:user"), ring), {
    target: "/p/../q?user=z%C3%B6e",
    ...owners("zöe"),
  });
  t.like(lookupTarget("/..%2fsecret", key("path"), ring), { status: 400, error: "bad_path" });
  t.like(lookupTarget("/bad%zz", key("path"), ring), { status: 400, error: "malformed_key" });
  t.like(lookupTarget("nopath", key("path"), ring), { status: 400, error: "bad_request" });
  t.like(lookupTarget("/q", key("query:user"), ring), { status: 400, error: "missing_key" });
  t.deepEqual(lookupTarget("/q", key("query:user", "any"), ring), {
    target: "/q",
    key: null,
    partition: -1,
    owners: [],
  });
  const error = t.throws(() => lookupTarget("/", key("header:x-user"), ring), { instanceOf: ConfigError });
  t.is(error?.field, "--target");
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

test("bad input is a ConfigError naming the flag or the field it sets", (t) => {
  const cases: [string[], RegExp][] = [
    [["k"], /^--members: required/],
    [["--members", "", "k"], /^--members: at least one member/],
    [["--members", "a,,b", "k"], /^--members: empty member name/],
    [["--members", "a,b,a", "k"], /^--members: duplicate member "a"/],
    // Flags and variables are validated under the field they set, as in serve.
    [["--members", "a", "--partitions", "0", "k"], /^ring\.partitions: must be a positive integer, got "0"/],
    [["--members", "a", "--partitions", "abc", "k"], /^ring\.partitions: must be a positive integer/],
    [["--members", "a", "--replicas=-1", "k"], /^ring\.replicas: must be an integer from 1 to 255, got "-1"/],
    [["--members", "a", "--hash", "md5", "k"], /^ring\.hash: must be one of fnv1a32, fnv1a64, got "md5"/],
    [["--members", "a", "--placement", "ketama", "k"], /^ring\.placement: must be one of/],
    [["--members", "a", "--order", "random", "k"], /^ring\.order: must be one of/],
    [["--members", "a", "--bogus", "k"], /^--bogus: unknown option/],
    [["--members-file", "/nonexistent/members", "k"], /^--members-file: cannot read/],
    [["--members", "a", "--config", "/nonexistent/ringroute.yaml", "k"], /^--config: cannot read/],
    [["--members", "a", "--members-file", "m.txt", "k"], /^--members: give --members or --members-file/],
  ];
  for (const [args, message] of cases) {
    const error = t.throws(() => ringOf(args), { instanceOf: ConfigError }, args.join(" "));
    t.regex(error?.message ?? "", message, args.join(" "));
  }
  const ring = Ring.build(["a", "b"]);
  t.is(t.throws(() => planChange(ring, ["a"], []))?.message, '--add: "a" is already a member');
  t.is(t.throws(() => planChange(ring, [], ["z"]))?.message, '--remove: "z" is not a member');
  t.is(t.throws(() => planChange(Ring.build(["a"]), [], ["a"]))?.message, "--remove: would leave no members");
});

test("bad input exits 2 with one line on stderr and nothing on stdout", async (t) => {
  const cases: [string[], RegExp][] = [
    [["lookup", "--members", "a", "--bogus", "k"], /^ringroute: --bogus: unknown option\n$/],
    [["plan", "--members", "a,b", "--partitions", "abc"], /^ringroute: ring\.partitions: must be a positive integer/],
    [["frobnicate"], /^ringroute: command: unknown command "frobnicate"/],
  ];
  const runs = await Promise.all(cases.map(([args]) => ringroute(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const run = runs[i] as Run;
    t.is(run.code, 2, args.join(" "));
    t.regex(run.stderr, message, args.join(" "));
    t.is(run.stderr.trim().split("\n").length, 1, `one line for ${args.join(" ")}`);
    t.is(run.stdout, "");
  }
});

test("--version and -v print the package's version", async (t) => {
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const runs = await Promise.all([ringroute(["--version"]), ringroute(["-v"])]);
  for (const run of runs) t.deepEqual(run, { code: 0, stdout: `ringroute ${version}\n`, stderr: "" });
});

test("a bare ringroute prints usage on stderr and exits 2; --help prints it on stdout", async (t) => {
  const [bare, help] = await Promise.all([ringroute([]), ringroute(["--help"])]);
  t.is(bare?.code, 2);
  t.is(bare?.stdout, "");
  t.regex(bare?.stderr ?? "", /^usage: ringroute <command>/);
  t.is(help?.code, 0);
  t.is(help?.stdout, bare?.stderr);
  for (const command of ["serve", "check", "lookup", "plan"])
    t.regex(help?.stdout ?? "", new RegExp(`ringroute ${command} `));
  // Each command's summary is its first sentence, whole, however the description is wrapped.
  const summaries = [...(help?.stdout ?? "").matchAll(/^ {2}ringroute \w+ .*\n((?: {6}.*\n)+)/gm)].map((m) =>
    (m[1] as string).replace(/\s+/g, " ").trim(),
  );
  t.is(summaries.length, 5);
  for (const text of summaries) t.regex(text, /[.!?]$/, `"${text}" ends a sentence`);
  t.true(summaries.includes("Runs the routing proxy and its admin server."));
  t.true(summaries.some((s) => s.startsWith("Prints {") && s.endsWith("as one JSON line a key.")));
  for (const line of (help?.stdout ?? "").split("\n")) t.true(line.length <= 100, `short line: ${line}`);
});

test("every command's help lists each flag with its default", (t) => {
  const defaults = defaultConfig();
  for (const command of [serve, check, lookup, plan]) {
    const help = commandHelp(command);
    t.regex(help, new RegExp(`^usage: ringroute ${command.name} `));
    for (const flag of command.flags) t.regex(help, new RegExp(`--${flag.name}\\b`), `${command.name} --${flag.name}`);
    t.regex(help, /-h, --help/);
    t.regex(help, new RegExp(`--partitions P .*default ${defaults.ring.partitions}\\b`));
    t.regex(help, new RegExp(`--replicas R .*default ${defaults.ring.replicas}\\b`));
  }
  const help = commandHelp(serve);
  t.regex(help, /--listen HOST:PORT .*default 0\.0\.0\.0:8080; RINGROUTE_LISTEN/);
  t.regex(help, /--connect-timeout DURATION .*default 2s/);
  t.regex(help, /--key SOURCE .*default path/);
  t.regex(help, /--ring-info BOOL .*default false/);
});

test("-h and --help print a command's help on stdout and exit 0, whatever the command", async (t) => {
  const runs = await Promise.all([ringroute(["serve", "-h"]), ringroute(["lookup", "--help"])]);
  t.deepEqual(runs[0], { code: 0, stdout: commandHelp(serve), stderr: "" });
  t.deepEqual(runs[1], { code: 0, stdout: commandHelp(lookup), stderr: "" });
});

test("check validates without binding and prints one line; a bad field exits 2 naming it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-check-"));
  const config = join(dir, "ringroute.yaml");
  const checked = (text: string) => {
    writeFileSync(config, text);
    const loaded = loadConfig(["--config", config], { env: {} });
    checkFiles(loaded);
    return summary(loaded);
  };
  const cases: [string, RegExp][] = [
    ["ring: { partitions: many }\n", /^ring\.partitions: must be a positive integer/],
    ["membership:\n  file: { path: /nonexistent/members.txt }\n", /^membership\.file\.path: cannot read/],
    [`membership:\n  file: { path: ${config} }\n`, /ringroute\.yaml: must be a list/],
    ["tls: { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }\n", /^tls\.cert: cannot read/],
    [`tls: { cert: ${config}, key: ${config} }\n`, /^tls: the certificate and key do not load/],
    ["http2: 2\n", /^http2: must be true or false, got 2/],
  ];
  for (const [text, message] of cases) {
    t.regex(t.throws(() => checked(text), { instanceOf: ConfigError }, text)?.message ?? "", message, text);
  }

  // An address in use and an agent that is not there would stop serve; check binds and dials nothing.
  writeFileSync(config, 'listen: 127.0.0.1:1\nmembership:\n  serf: { rpc: "127.0.0.1:1" }\nring: { partitions: 64 }\n');
  const [ok, bad] = await Promise.all([
    ringroute(["check", "--config", config]),
    ringroute(["check", "--config", config, "--replicas", "0"]),
  ]);
  t.is(ok?.code, 0, ok?.stderr);
  t.regex(
    ok?.stdout ?? "",
    /^config ok: listen 127\.0\.0\.1:1, .*ring 64 partitions.*membership serf 127\.0\.0\.1:1, .*\n$/,
  );
  t.deepEqual(bad, {
    code: 2,
    stdout: "",
    stderr: 'ringroute: ring.replicas: must be an integer from 1 to 255, got "0"\n',
  });
});

test("check notes a config that leaves ring.placement unset (the default changed); one that sets it, or compat, gets no notice", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-notice-"));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const unset = file("unset.yaml", "ring: { partitions: 64 }\n");
  const pinned = file("pinned.yaml", "ring: { partitions: 64, placement: jump }\n");
  const libring = file("libring.yaml", "ring: { compat: libring }\n");
  const [a, b, c, d] = await Promise.all([
    ringroute(["check", "--config", unset]),
    ringroute(["check", "--config", pinned]),
    ringroute(["check", "--config", libring]),
    ringroute(["check", "--config", unset, "--placement", "jump"]),
  ]);
  t.is(a?.code, 0, a?.stderr);
  t.regex(a?.stdout ?? "", /^config ok: .*ring 64 partitions, 3 replicas, balanced, /);
  t.regex(a?.stderr ?? "", /^notice: ring\.placement is not set, so it is balanced .*set ring\.placement: jump/);
  for (const run of [b, c, d]) {
    t.is(run?.code, 0, run?.stderr);
    t.is(run?.stderr, "", "no notice");
  }
  t.regex(b?.stdout ?? "", /ring 64 partitions, 3 replicas, jump, /);
  t.is(placementNotice({}) === undefined, false, "nothing set at all: the notice");
});

test("check's line (and serve's first) names every membership source, etcd included, never `none`", (t) => {
  const line = (yaml: string) => summary(loadConfig(["--config", "c.yaml"], { env: {}, readFile: () => yaml }));
  t.regex(
    line("membership:\n  etcd: { endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379], cluster: shop }\n"),
    /membership etcd http:\/\/10\.0\.0\.1:2379,http:\/\/10\.0\.0\.2:2379 \/ringroute\/shop\/ \(coordinated hand-offs\), /,
  );
  t.regex(line("membership:\n  etcd: { handoff: immediate }\n"), /membership etcd .* \(immediate hand-offs\)/);
  const sources: Record<string, string> = {
    static: "static: { members: [{ name: a, url: http://127.0.0.1:1 }] }",
    file: "file: { path: /tmp/members.txt }",
    serf: "serf: {}",
    dns: "dns: { name: _http._tcp.web.local }",
    etcd: "etcd: {}",
  };
  for (const kind of membershipSourceKinds) {
    const text = line(`membership:\n  ${sources[kind]}\n`);
    t.regex(text, new RegExp(`membership ${kind} `), kind);
    t.notRegex(text, /membership none/);
  }
});
