import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { loadConfig } from "../src/commands/flags.ts";
import { defaultConfig, parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "ringroute-config-")), "ringroute.yaml");
  writeFileSync(path, text);
  return path;
}

test("with nothing given, the config is defaultConfig(): proxy on :8080, admin on loopback :9090, a balanced ring", (t) => {
  const config = loadConfig([], { env: {} });
  t.deepEqual(config, defaultConfig());
  t.deepEqual(config.listen, { host: "0.0.0.0", port: 8080 });
  t.deepEqual(config.admin, { host: "127.0.0.1", port: 9090 });
  t.like(config.ring, { partitions: 512, replicas: 3, hash: "fnv1a32", placement: "balanced", order: "lexical" });
  t.is(config.ring.balanceFactor, 1.25);
  t.is(config.membership, undefined, "no membership: serve runs the demo backends");
});

test("flags override RINGROUTE_* variables, which override the file", (t) => {
  const path = file("ring:\n  partitions: 1024\n  replicas: 2\nlisten: 127.0.0.1:7000\n");
  const env = { RINGROUTE_PARTITIONS: "2048", RINGROUTE_CONFIG: path };
  t.is(loadConfig([], { env: { RINGROUTE_CONFIG: path } }).ring.partitions, 1024);
  t.is(loadConfig([], { env }).ring.partitions, 2048);
  const flagged = loadConfig(["--partitions", "4096", "--listen", ":7001"], { env });
  t.is(flagged.ring.partitions, 4096);
  t.is(flagged.ring.replicas, 2, "fields no override names keep the file's value");
  t.deepEqual(flagged.listen, { host: "0.0.0.0", port: 7001 });
  t.is(loadConfig(["--config", path], { env: {} }).ring.partitions, 1024);
});

test("--members name=url,name=url is a static member list", (t) => {
  const config = loadConfig(["--members", "a=http://127.0.0.1:9101, b=http://127.0.0.1:9102/api"], { env: {} });
  t.deepEqual(config.membership?.static?.members, [
    { name: "a", url: "http://127.0.0.1:9101", tags: {} },
    { name: "b", url: "http://127.0.0.1:9102/api", tags: {} },
  ]);
  t.deepEqual(
    loadConfig([], { env: { RINGROUTE_MEMBERS: "z=http://127.0.0.1:1" } }).membership?.static?.members.map(
      (m) => m.name,
    ),
    ["z"],
  );
});

test("durations take ms, s, m and h units", (t) => {
  const config = parseConfig({
    proxy: {
      timeouts: {
        connect: "500ms",
        response: "1.5m",
        keepAlive: "2s",
        head: "7s",
        body: "1m",
        clientIdle: "250ms",
        clientWrite: "2m",
        queue: "3s",
      },
      eject: { for: "1h" },
    },
    shutdownTimeout: "0",
  });
  t.deepEqual(config.proxy.timeouts, {
    connect: 500,
    response: 90_000,
    keepAlive: 2000,
    head: 7000,
    body: 60_000,
    clientIdle: 250,
    tunnel: 3_600_000,
    clientWrite: 120_000,
    queue: 3000,
  });
  t.is(config.proxy.eject.for, 3_600_000);
  t.is(config.shutdownTimeout, 0);
});

test("retry conditions, methods and header switches parse from YAML values or strings", (t) => {
  const config = parseConfig({
    proxy: { retry: { on: "connect-failure, 504", methods: ["get", "post"] }, headers: { ringInfo: "true" } },
    key: { from: "regex:^/t/([^/]+)", missing: "any", maxLength: "100" },
  });
  t.deepEqual(config.proxy.retry.on, ["connect-failure", 504]);
  t.deepEqual(config.proxy.retry.methods, ["GET", "POST"]);
  t.deepEqual(config.proxy.retry.grpcMethods, [], "no gRPC method is resent after it may have been processed");
  t.true(config.proxy.headers.ringInfo);
  t.deepEqual(config.key, { from: { kind: "regex", pattern: "^/t/([^/]+)" }, missing: "any", maxLength: 100 });
});

test("proxy.retry.grpcMethods takes method paths and whole services, as gRPC writes them", (t) => {
  const config = parseConfig({ proxy: { retry: { grpcMethods: ["/kv.Store/Get", "/kv.Reader/*"] } } });
  t.deepEqual(config.proxy.retry.grpcMethods, ["/kv.Store/Get", "/kv.Reader/*"]);
});

test("every invalid value is a ConfigError naming its dotted field", (t) => {
  const cases: [unknown, string][] = [
    [{ ring: { partitions: "abc" } }, 'ring.partitions: must be a positive integer, got "abc"'],
    [{ ring: { partitions: 0 } }, "ring.partitions: must be a positive integer, got 0"],
    [{ ring: { replicas: 300 } }, "ring.replicas: must be an integer from 1 to 255, got 300"],
    [{ ring: { hash: "md5" } }, 'ring.hash: must be one of fnv1a32, fnv1a64, got "md5"'],
    [{ listen: "nope" }, 'listen: must be host:port like 127.0.0.1:8080 or [::1]:8080, got "nope"'],
    [{ admin: "127.0.0.1:70000" }, 'admin: must be host:port like 127.0.0.1:8080 or [::1]:8080, got "127.0.0.1:70000"'],
    [
      { key: { from: "body" } },
      'key.from: must be path, header:NAME, query:NAME, cookie:NAME or regex:PATTERN, got "body"',
    ],
    [{ key: { from: "header:" } }, "key.from: header: needs a name or pattern after the colon"],
    [
      { key: { from: "regex:^/users/[0-9]+" } },
      "key.from: the pattern needs a capture group: the key is its first group",
    ],
    [{ key: { missing: "drop" } }, 'key.missing: must be one of reject, any, got "drop"'],
    [
      { proxy: { timeouts: { connect: "fast" } } },
      'proxy.timeouts.connect: must be a positive duration like 500ms, 2s or 1m, got "fast"',
    ],
    [
      { proxy: { timeouts: { response: 30 } } },
      "proxy.timeouts.response: must be a positive duration like 500ms, 2s or 1m, got 30",
    ],
    [
      { proxy: { timeouts: { clientWrite: "0" } } },
      'proxy.timeouts.clientWrite: must be a positive duration like 500ms, 2s or 1m, got "0"',
    ],
    [
      { proxy: { timeouts: { queue: "later" } } },
      'proxy.timeouts.queue: must be a positive duration like 500ms, 2s or 1m, got "later"',
    ],
    [
      { proxy: { retry: { on: ["reset", 404] } } },
      "proxy.retry.on[1]: must be connect-failure, reset, timeout or a 5xx status code, got 404",
    ],
    [{ proxy: { retry: { attempts: -1 } } }, "proxy.retry.attempts: must be a non-negative integer, got -1"],
    [
      { proxy: { retry: { grpcMethods: ["/kv.Store/Get", "Put"] } } },
      'proxy.retry.grpcMethods[1]: must be a gRPC method path /pkg.Service/Method or /pkg.Service/*, got "Put"',
    ],
    [
      { proxy: { retry: { grpcMethods: ["/kv.Store/*/Get"] } } },
      'proxy.retry.grpcMethods[0]: must be a gRPC method path /pkg.Service/Method or /pkg.Service/*, got "/kv.Store/*/Get"',
    ],
    [
      { proxy: { limits: { responseHeaderBytes: 100 } } },
      "proxy.limits.responseHeaderBytes: must be an integer of at least 256, got 100",
    ],
    [
      { proxy: { retyr: {} } },
      "proxy.retyr: unknown field (expected one of timeouts, limits, errors, connections, retry, eject, headers)",
    ],
    [{ proxy: { headers: { forwarded: "yes" } } }, 'proxy.headers.forwarded: must be true or false, got "yes"'],
    [{ membership: { static: { members: [{ name: "a", url: "not a url" }] } } }, "membership.static.members[0].url:"],
    [{ shutdownTimeout: "soon" }, 'shutdownTimeout: must be a duration like 500ms, 2s or 1m, got "soon"'],
    [{ metrics: { memberRetention: "a while" } }, "metrics.memberRetention:"],
    [{ metrics: { retention: "1h" } }, "metrics.retention:"],
    [{ http2: "maybe" }, 'http2: must be true or false, got "maybe"'],
  ];
  for (const [raw, message] of cases) {
    const error = t.throws(() => parseConfig(raw), { instanceOf: ConfigError });
    // A message ending in ":" checks the field only (its wording belongs to another module).
    if (message.endsWith(":")) t.is(`${error?.field}:`, message);
    else t.is(error?.message, message);
  }
});

test("http2: on by default, off by the file, --http2 or RINGROUTE_HTTP2", (t) => {
  t.true(loadConfig([], { env: {} }).http2);
  t.false(loadConfig(["--http2", "false"], { env: {} }).http2);
  t.false(loadConfig([], { env: { RINGROUTE_HTTP2: "false" } }).http2);
  const error = t.throws(() => loadConfig(["--http2", "sometimes"], { env: {} }), { instanceOf: ConfigError });
  t.is(error?.field, "http2");
});

test("flag and variable values are validated under the field they set", (t) => {
  const error = t.throws(() => loadConfig(["--partitions", "abc"], { env: {} }), { instanceOf: ConfigError });
  t.is(error?.field, "ring.partitions");
  const fromEnv = t.throws(() => loadConfig([], { env: { RINGROUTE_RETRY_ATTEMPTS: "many" } }), {
    instanceOf: ConfigError,
  });
  t.is(fromEnv?.field, "proxy.retry.attempts");
  t.is(
    t.throws(() => loadConfig(["--members", "just-a-name"], { env: {} }))?.message.split(":")[0],
    "membership.static.members",
  );
  t.is(t.throws(() => loadConfig(["--bogus"], { env: {} }))?.message, "--bogus: unknown option");
});

test("an unreadable or malformed file names --config", (t) => {
  t.regex(
    t.throws(() => loadConfig(["--config", "/nonexistent/ringroute.yaml"], { env: {} }))?.message ?? "",
    /^--config: cannot read/,
  );
  t.regex(
    t.throws(() => loadConfig(["--config", file("ring: [unclosed\n")], { env: {} }))?.message ?? "",
    /^--config: .* is not valid YAML/,
  );
  t.regex(
    t.throws(() => loadConfig(["--config", file("- a\n- b\n")], { env: {} }))?.message ?? "",
    /must hold a mapping/,
  );
});

test("a YAML error says what and where, and quotes the line, instead of ending in a colon", (t) => {
  const yaml = "ring:\n  partitions: 64\nproxy:\n  retry:\n    attempts: 2\n   on: [502]\n";
  const message = t.throws(() => loadConfig(["--config", file(yaml)], { env: {} }))?.message ?? "";
  t.regex(message, /^--config: .* is not valid YAML: .+ at line 6, column \d+: "on: \[502\]"$/);
  t.notRegex(message, /:$/);
  t.false(message.includes("\n"), "one line");
});

test("the example config in examples/ringroute.yaml is valid and spells out the defaults", (t) => {
  const path = fileURLToPath(new URL("../examples/ringroute.yaml", import.meta.url));
  const config = loadConfig(["--config", path], { env: {} });
  const defaults = defaultConfig();
  t.deepEqual({ ...config, membership: undefined }, defaults);
  t.is(config.membership?.static?.members.length, 3);
});

test("RINGROUTE_SERF_AUTH_KEY sets the Serf source's auth key, and only a Serf source's", (t) => {
  const serf = file('membership:\n  serf: { rpc: "127.0.0.1:7373" }\n');
  const config = loadConfig(["--config", serf], { env: { RINGROUTE_SERF_AUTH_KEY: "c2VjcmV0c2VjcmV0c2VjcmV0MTI=" } });
  t.is(config.membership?.serf?.authKey, "c2VjcmV0c2VjcmV0c2VjcmV0MTI=");
  const other = loadConfig(["--config", file("ring: { partitions: 64 }\n")], { env: { RINGROUTE_SERF_AUTH_KEY: "x" } });
  t.is(other.membership, undefined, "no Serf section: nothing is made up");
});

test("metrics.memberRetention and proxy.limits.responseHeaderBytes: defaults and values", (t) => {
  const defaults = parseConfig({});
  t.is(defaults.metrics.memberRetention, 3_600_000);
  t.is(defaults.proxy.limits.responseHeaderBytes, 65_536);
  const set = parseConfig({ metrics: { memberRetention: "10m" }, proxy: { limits: { responseHeaderBytes: "8192" } } });
  t.is(set.metrics.memberRetention, 600_000);
  t.is(set.proxy.limits.responseHeaderBytes, 8192);
  t.is(parseConfig({ metrics: { memberRetention: 0 } }).metrics.memberRetention, 0);
});
