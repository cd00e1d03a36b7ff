import test from "ava";
import { ConfigError } from "../src/errors/config-error.ts";
import { membersFromFlag, parseMembershipConfig } from "../src/membership/config.ts";
import { FileSource } from "../src/membership/file.ts";
import { HealthCheckedSource } from "../src/membership/health.ts";
import { createSource } from "../src/membership/index.ts";
import { memberUrlProblem } from "../src/membership/member-url.ts";
import { SerfSource } from "../src/membership/serf/source.ts";
import { StaticSource } from "../src/membership/static.ts";
import { duration } from "../src/utils/duration.ts";

const members = [{ name: "a", url: "http://127.0.0.1:9101" }];

test("a static section with health checks reads with every default filled in", (t) => {
  const config = parseMembershipConfig({
    static: { members },
    health: { path: "/healthz", interval: "2s", timeout: "1s", rise: 2, fall: 3 },
  });
  t.deepEqual(config, {
    static: { members: [{ name: "a", url: "http://127.0.0.1:9101", tags: {} }] },
    health: {
      enabled: true,
      path: "/healthz",
      interval: 2000,
      timeout: 1000,
      rise: 2,
      fall: 3,
      reconnectInterval: 10_000,
    },
  });
});

test("a serf section reads with the documented defaults", (t) => {
  t.deepEqual(parseMembershipConfig({ serf: {} }).serf, {
    rpc: "127.0.0.1:7373",
    authKey: undefined,
    tags: {},
    tagMatch: "all",
    urlTag: "http",
    urlScheme: "http",
    reconnectMin: 200,
    reconnectMax: 5000,
    coalesce: 20,
    timeout: 5000,
  });
  const serf = parseMembershipConfig({
    serf: { rpc: "[::1]:7374", authKey: "k", tags: { ring: "^active$" }, urlTag: "addr", urlScheme: "https" },
  }).serf;
  t.like(serf, { rpc: "[::1]:7374", authKey: "k", tags: { ring: "^active$" }, urlTag: "addr", urlScheme: "https" });
});

test("a file section reads its path, poll interval and settle period", (t) => {
  t.deepEqual(parseMembershipConfig({ file: { path: "members.yaml" } }).file, {
    path: "members.yaml",
    pollInterval: 500,
    settle: 200,
  });
  t.deepEqual(parseMembershipConfig({ file: { path: "m", pollInterval: "250ms", settle: "1s" } }).file, {
    path: "m",
    pollInterval: 250,
    settle: 1000,
  });
  t.throws(() => parseMembershipConfig({ file: { path: "m", settle: 5 } }), {
    message: /^membership\.file\.settle: /,
  });
});

test("member URLs are checked strictly wherever they are written", (t) => {
  const bad: [string, string][] = [
    ["ftp://h:1", "must be an http(s) URL"],
    ["http:h", "must be an http(s) URL"],
    ["http://h:0", "port must be 1-65535"],
    ["http://h:65536", "port must be 1-65535"],
    ["http://h:", "port must be 1-65535"],
    ["http://user:pw@h:1", "must not carry credentials"],
    ["http://user@h:1", "must not carry credentials"],
  ];
  for (const [url, problem] of bad) {
    t.throws(() => parseMembershipConfig({ static: { members: [{ name: "a", url }] } }), {
      message: `membership.static.members[0].url: ${problem}, got ${JSON.stringify(url)}`,
    });
    t.is(memberUrlProblem(url), problem, url);
  }
  for (const url of ["http://h", "https://h:8443/base", "http://[::1]:65535", "HTTP://10.0.0.5:8080"]) {
    t.is(memberUrlProblem(url), undefined, url);
  }
  t.throws(() => new StaticSource([{ name: "a", url: "http://h:0" }]), { message: /^members\[0\]\.url: port/ });
});

test("bad membership settings name the dotted field and the problem", (t) => {
  const cases: [unknown, string][] = [
    [[], "membership: must be a mapping"],
    [{}, "membership: needs exactly one source (static, file, serf, dns, etcd), got none"],
    [
      { static: { members }, file: { path: "m" } },
      "membership: needs exactly one source (static, file, serf, dns, etcd), got static, file",
    ],
    [{ consul: {} }, "membership.consul: unknown membership source (one of static, file, serf, dns, etcd)"],
    [{ static: { members: [] } }, "membership.static.members: must be a non-empty list of {name, url}"],
    [
      { static: { members: [{ name: "a", url: "x" }] } },
      'membership.static.members[0].url: must be an http(s) URL, got "x"',
    ],
    [
      { static: { members: [...members, { name: "a", url: "http://h:1" }] } },
      'membership.static.members: duplicate member "a"',
    ],
    [{ static: { members, extra: 1 } }, "membership.static.extra: unknown field (expected members)"],
    [{ file: {} }, "membership.file.path: must be the path of a members file"],
    [{ serf: { rpc: "7373" } }, 'membership.serf.rpc: must be host:port like 127.0.0.1:8080 or [::1]:8080, got "7373"'],
    [{ serf: { tags: { ring: "(" } } }, "membership.serf.tags.ring: not a regular expression"],
    [{ serf: { tags: { ring: [1] } } }, "membership.serf.tags.ring: must be a string"],
    [{ serf: { urlScheme: "ftp" } }, 'membership.serf.urlScheme: must be http or https, got "ftp"'],
    [{ serf: { tag: {} } }, "membership.serf.tag: unknown field"],
    [
      { static: { members }, health: { interval: 2 } },
      "membership.health.interval: must be a positive duration like 500ms, 2s or 1m, got 2",
    ],
    [{ static: { members }, health: { fall: 0 } }, "membership.health.fall: must be an integer from 1 to 100, got 0"],
    [
      { static: { members }, health: { path: "healthz" } },
      'membership.health.path: must start with "/", got "healthz"',
    ],
    [{ static: { members }, health: { enabled: "no" } }, 'membership.health.enabled: must be true or false, got "no"'],
  ];
  for (const [raw, message] of cases) {
    const error = t.throws(() => parseMembershipConfig(raw), { instanceOf: ConfigError }, JSON.stringify(raw));
    t.true(error?.message.startsWith(message), `${error?.message} should start with ${message}`);
  }
});

test("durations take ms, s, m and h, and refuse numbers without a unit", (t) => {
  t.is(duration("250ms", "f"), 250);
  t.is(duration("2s", "f"), 2000);
  t.is(duration("1.5m", "f"), 90_000);
  t.is(duration("1h", "f"), 3_600_000);
  for (const bad of [2, "2", "0s", "-1s", "2 days", ""])
    t.throws(() => duration(bad, "f"), { instanceOf: ConfigError });
});

test("--members name=url,... gives static members; mistakes name the flag", (t) => {
  t.deepEqual(membersFromFlag("a=http://h:1, b=https://h:2/base"), [
    { name: "a", url: "http://h:1", tags: {} },
    { name: "b", url: "https://h:2/base", tags: {} },
  ]);
  t.throws(() => membersFromFlag("a"), { message: '--members: expected name=url, got "a"' });
  t.throws(() => membersFromFlag("a=h:1"), { message: '--members: must be an http(s) URL, got "h:1"' });
  t.throws(() => membersFromFlag("a=http://h:1,a=http://h:2"), { message: '--members: duplicate member "a"' });
});

test("createSource builds the configured kind, wrapped in health checks only when they are on", (t) => {
  t.true(createSource(parseMembershipConfig({ static: { members } })) instanceof StaticSource);
  t.true(createSource(parseMembershipConfig({ file: { path: "m" } })) instanceof FileSource);
  t.true(createSource(parseMembershipConfig({ serf: {} })) instanceof SerfSource);
  const checked = createSource(parseMembershipConfig({ static: { members }, health: {} }));
  t.true(checked instanceof HealthCheckedSource);
  t.is(checked.kind, "static");
  const off = createSource(parseMembershipConfig({ static: { members }, health: { enabled: false } }));
  t.true(off instanceof StaticSource);
});
