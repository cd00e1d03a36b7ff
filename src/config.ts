/**
 * The one configuration schema of `ringroute serve`: defaults, a YAML file,
 * `RINGROUTE_*` environment variables and flags, in rising precedence. Every
 * value is validated before anything starts; the first bad one throws a
 * ConfigError naming its dotted field path (`ring.partitions`), so the CLI
 * prints one line and exits 2.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { usageError } from "./commands/usage-error.ts";
import { ConfigError } from "./errors/config-error.ts";
import { type MembershipConfig, membersFromFlag, parseMembershipConfig } from "./membership/config.ts";
import { defaultRingConfig, type RingConfig, validateRingConfig } from "./ring/ring.ts";
import { duration } from "./utils/duration.ts";
import { type HostPort, hostPort, integer, mapping, show } from "./utils/fields.ts";

export type { HostPort } from "./utils/fields.ts";

/** Where a request's key comes from, and what to do without one. */
export interface KeyConfig {
  /**
   * `path` (the URL path without the query, percent-decoded: Go's `r.URL.Path`,
   * as in libring's example), `header:NAME`, `query:NAME`, `cookie:NAME`, or
   * `regex:PATTERN` (its first capture group, matched against the path).
   */
  from: string;
  /** `reject`: answer 400 when the key is absent. `any`: send the request to any live member. */
  missing: "reject" | "any";
  /** Longest key accepted, in characters; longer keys get 414 (path, query) or 431 (header, cookie). */
  maxLength: number;
}

/** What triggers failover besides status codes. */
export type RetryCondition = "connect-failure" | "reset" | "timeout";

export interface ProxyConfig {
  timeouts: {
    /** Milliseconds to open a connection to a member before trying the next one. */
    connect: number;
    /** Milliseconds to wait for a member's response headers, and between body chunks; then 504. */
    response: number;
    /** Milliseconds an idle keep-alive connection to a member stays open. */
    keepAlive: number;
  };
  /** Most connections held open to one member (undici Pool size). */
  connections: number;
  retry: {
    /** Further members tried after the first one fails (0: no failover). */
    attempts: number;
    /** Failures that move a request on to the next member: conditions and response status codes. */
    on: (RetryCondition | number)[];
    /** Methods that may be resent after a member may have seen them (upper case). */
    methods: string[];
  };
  /** Passive ejection: a member that fails `after` times in a row is skipped for `for` milliseconds. */
  eject: { after: number; for: number };
  headers: {
    /** Add X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host to forwarded requests. */
    forwarded: boolean;
    /** Add x-ringroute-partition and x-ringroute-member to responses. */
    ringInfo: boolean;
  };
}

export interface Config {
  /** Where the proxy accepts traffic. */
  listen: HostPort;
  /** Where the admin server (metrics, health, ring, events) listens; loopback by default. */
  admin: HostPort;
  ring: RingConfig;
  key: KeyConfig;
  /** Where members come from; absent means `serve` starts three in-process demo backends. */
  membership: MembershipConfig | undefined;
  proxy: ProxyConfig;
  /** Milliseconds in-flight requests get to finish on SIGTERM/SIGINT before connections are cut. */
  shutdownTimeout: number;
}

/** The defaults, field by field; `ringroute serve` with no config uses exactly these. */
export function defaultConfig(): Config {
  return {
    listen: { host: "0.0.0.0", port: 8080 },
    admin: { host: "127.0.0.1", port: 9090 },
    ring: defaultRingConfig(),
    key: { from: "path", missing: "reject", maxLength: 4096 },
    membership: undefined,
    proxy: {
      timeouts: { connect: 2_000, response: 30_000, keepAlive: 4_000 },
      connections: 128,
      retry: {
        attempts: 2,
        on: ["connect-failure", "reset", 502, 503],
        methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"],
      },
      eject: { after: 5, for: 10_000 },
      headers: { forwarded: true, ringInfo: false },
    },
    shutdownTimeout: 10_000,
  };
}

/** A flag, the environment variable for it, and the field both set. */
interface Override {
  flag: string;
  env: string;
  field: string;
}

/** Flags and environment variables of `serve`; each sets one config field (flags win). */
export const overrides: readonly Override[] = [
  { flag: "listen", env: "RINGROUTE_LISTEN", field: "listen" },
  { flag: "admin", env: "RINGROUTE_ADMIN", field: "admin" },
  { flag: "members", env: "RINGROUTE_MEMBERS", field: "membership.static.members" },
  { flag: "partitions", env: "RINGROUTE_PARTITIONS", field: "ring.partitions" },
  { flag: "replicas", env: "RINGROUTE_REPLICAS", field: "ring.replicas" },
  { flag: "hash", env: "RINGROUTE_HASH", field: "ring.hash" },
  { flag: "placement", env: "RINGROUTE_PLACEMENT", field: "ring.placement" },
  { flag: "order", env: "RINGROUTE_ORDER", field: "ring.order" },
  { flag: "key", env: "RINGROUTE_KEY", field: "key.from" },
  { flag: "key-missing", env: "RINGROUTE_KEY_MISSING", field: "key.missing" },
  { flag: "retry-attempts", env: "RINGROUTE_RETRY_ATTEMPTS", field: "proxy.retry.attempts" },
  { flag: "connect-timeout", env: "RINGROUTE_CONNECT_TIMEOUT", field: "proxy.timeouts.connect" },
  { flag: "response-timeout", env: "RINGROUTE_RESPONSE_TIMEOUT", field: "proxy.timeouts.response" },
  { flag: "ring-info", env: "RINGROUTE_RING_INFO", field: "proxy.headers.ringInfo" },
  { flag: "shutdown-timeout", env: "RINGROUTE_SHUTDOWN_TIMEOUT", field: "shutdownTimeout" },
];

export const serveUsage = `ringroute serve [--config FILE] [flags]
  Runs the routing proxy and its admin server. With no membership configured
  it starts three demo backends in-process and routes to them.
  --config FILE (RINGROUTE_CONFIG)  YAML config; flags and RINGROUTE_* override it
${overrides.map((o) => `  --${o.flag} (${o.env})  ${o.field}`).join("\n")}
  --members takes name=url,name=url (a static member list)`;

/** What `loadConfig` reads besides the flags: the environment, and files. */
export interface ConfigInputs {
  env?: Record<string, string | undefined>;
  readFile?: (path: string) => string;
}

/**
 * Builds the config of `ringroute serve ARGS`: defaults, then the file named by
 * `--config` or RINGROUTE_CONFIG, then RINGROUTE_* variables, then flags.
 */
export function loadConfig(args: string[], inputs: ConfigInputs = {}): Config {
  const env = inputs.env ?? process.env;
  const readFile = inputs.readFile ?? ((path: string) => readFileSync(path, "utf8"));
  let values: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: "string" }> = { config: { type: "string" } };
    for (const o of overrides) options[o.flag] = { type: "string" };
    values = parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw usageError(error);
  }

  // An empty variable counts as unset, as for every RINGROUTE_* variable.
  const file = (values.config as string | undefined) ?? (env.RINGROUTE_CONFIG || undefined);
  const raw: Record<string, unknown> = file === undefined ? {} : readConfigFile(file, readFile);
  for (const o of overrides) {
    const value = env[o.env];
    if (value !== undefined && value !== "") setOverride(raw, o.field, value);
  }
  for (const o of overrides) {
    const value = values[o.flag];
    if (typeof value === "string") setOverride(raw, o.field, value);
  }
  return parseConfig(raw);
}

function readConfigFile(path: string, readFile: (path: string) => string): Record<string, unknown> {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError("--config", `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError("--config", `${path} is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed))
    throw new ConfigError("--config", `${path} must hold a mapping`);
  return parsed as Record<string, unknown>;
}

function setOverride(raw: Record<string, unknown>, field: string, value: string): void {
  if (field === "membership.static.members") {
    // A quick static list replaces whatever source the file names; its health checks stay.
    const previous = raw.membership as Record<string, unknown> | undefined;
    const health = previous && typeof previous === "object" ? previous.health : undefined;
    raw.membership = {
      ...(health === undefined ? {} : { health }),
      static: { members: membersFromFlag(value, field) },
    };
    return;
  }
  const path = field.split(".");
  let node = raw;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

/**
 * Validates a raw config (parsed YAML with overrides merged in) field by
 * field. Numbers, booleans and durations may also be strings, as they arrive
 * from flags and the environment.
 */
export function parseConfig(raw: unknown): Config {
  const config = defaultConfig();
  const root = mapping(raw, "", ["listen", "admin", "ring", "key", "membership", "proxy", "shutdownTimeout"]);
  if (root.listen !== undefined) config.listen = hostPort(root.listen, "listen");
  if (root.admin !== undefined) config.admin = hostPort(root.admin, "admin");

  if (root.ring !== undefined) {
    const ring = mapping(root.ring, "ring", ["partitions", "replicas", "hash", "placement", "order"]);
    if (ring.partitions !== undefined) config.ring.partitions = integer(ring.partitions, "ring.partitions", 1);
    if (ring.replicas !== undefined) config.ring.replicas = integer(ring.replicas, "ring.replicas", 1);
    if (ring.hash !== undefined) config.ring.hash = ring.hash as RingConfig["hash"];
    if (ring.placement !== undefined) config.ring.placement = ring.placement as RingConfig["placement"];
    if (ring.order !== undefined) config.ring.order = ring.order as RingConfig["order"];
  }
  validateRingConfig(config.ring, "ring.");

  if (root.key !== undefined) {
    const key = mapping(root.key, "key", ["from", "missing", "maxLength"]);
    if (key.from !== undefined) config.key.from = keySource(key.from, "key.from");
    if (key.missing !== undefined) config.key.missing = oneOf(key.missing, "key.missing", ["reject", "any"] as const);
    if (key.maxLength !== undefined) config.key.maxLength = integer(key.maxLength, "key.maxLength", 1);
  }

  if (root.membership !== undefined) config.membership = parseMembershipConfig(root.membership, "membership");

  if (root.proxy !== undefined) parseProxy(root.proxy, config.proxy);
  if (root.shutdownTimeout !== undefined)
    config.shutdownTimeout = duration(root.shutdownTimeout, "shutdownTimeout", { zero: true });
  return config;
}

function parseProxy(raw: unknown, proxy: ProxyConfig): void {
  const s = mapping(raw, "proxy", ["timeouts", "connections", "retry", "eject", "headers"]);
  if (s.timeouts !== undefined) {
    const t = mapping(s.timeouts, "proxy.timeouts", ["connect", "response", "keepAlive"]);
    if (t.connect !== undefined) proxy.timeouts.connect = duration(t.connect, "proxy.timeouts.connect");
    if (t.response !== undefined) proxy.timeouts.response = duration(t.response, "proxy.timeouts.response");
    if (t.keepAlive !== undefined) proxy.timeouts.keepAlive = duration(t.keepAlive, "proxy.timeouts.keepAlive");
  }
  if (s.connections !== undefined) proxy.connections = integer(s.connections, "proxy.connections", 1);
  if (s.retry !== undefined) {
    const r = mapping(s.retry, "proxy.retry", ["attempts", "on", "methods"]);
    if (r.attempts !== undefined) proxy.retry.attempts = integer(r.attempts, "proxy.retry.attempts", 0);
    if (r.on !== undefined) proxy.retry.on = retryConditions(r.on, "proxy.retry.on");
    if (r.methods !== undefined) {
      proxy.retry.methods = list(r.methods, "proxy.retry.methods").map((m, i) => {
        if (typeof m !== "string" || !/^[A-Za-z]+$/.test(m)) {
          throw new ConfigError(`proxy.retry.methods[${i}]`, `must be an HTTP method, got ${show(m)}`);
        }
        return m.toUpperCase();
      });
    }
  }
  if (s.eject !== undefined) {
    const e = mapping(s.eject, "proxy.eject", ["after", "for"]);
    if (e.after !== undefined) proxy.eject.after = integer(e.after, "proxy.eject.after", 0);
    if (e.for !== undefined) proxy.eject.for = duration(e.for, "proxy.eject.for", { zero: true });
  }
  if (s.headers !== undefined) {
    const h = mapping(s.headers, "proxy.headers", ["forwarded", "ringInfo"]);
    if (h.forwarded !== undefined) proxy.headers.forwarded = boolean(h.forwarded, "proxy.headers.forwarded");
    if (h.ringInfo !== undefined) proxy.headers.ringInfo = boolean(h.ringInfo, "proxy.headers.ringInfo");
  }
}

function boolean(raw: unknown, field: string): boolean {
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(field, `must be true or false, got ${show(raw)}`);
}

function oneOf<T extends string>(raw: unknown, field: string, choices: readonly T[]): T {
  if (typeof raw !== "string" || !choices.includes(raw as T)) {
    throw new ConfigError(field, `must be one of ${choices.join(", ")}, got ${show(raw)}`);
  }
  return raw as T;
}

function list(raw: unknown, field: string): unknown[] {
  if (Array.isArray(raw)) return raw;
  if (typeof raw === "string") return raw.split(",").map((item) => item.trim());
  throw new ConfigError(field, `must be a list, got ${show(raw)}`);
}

function keySource(raw: unknown, field: string): string {
  if (typeof raw !== "string") throw new ConfigError(field, `must be a string, got ${show(raw)}`);
  if (raw === "path") return raw;
  const colon = raw.indexOf(":");
  const kind = colon < 0 ? raw : raw.slice(0, colon);
  const arg = colon < 0 ? "" : raw.slice(colon + 1);
  if (!["header", "query", "cookie", "regex"].includes(kind)) {
    throw new ConfigError(
      field,
      `must be path, header:NAME, query:NAME, cookie:NAME or regex:PATTERN, got ${show(raw)}`,
    );
  }
  if (arg === "") throw new ConfigError(field, `${kind}: needs a name or pattern after the colon`);
  if (kind === "header" && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(arg)) {
    throw new ConfigError(field, `${show(arg)} is not a valid header name`);
  }
  if (kind === "regex") {
    let groups: number;
    try {
      groups = (new RegExp(`${arg}|`).exec("")?.length ?? 1) - 1;
    } catch (error) {
      throw new ConfigError(field, `invalid regular expression: ${(error as Error).message}`);
    }
    if (groups < 1) throw new ConfigError(field, "the pattern needs a capture group: the key is its first group");
  }
  return raw;
}

function retryConditions(raw: unknown, field: string): (RetryCondition | number)[] {
  const conditions: RetryCondition[] = ["connect-failure", "reset", "timeout"];
  return list(raw, field).map((item, i) => {
    if (typeof item === "string" && (conditions as string[]).includes(item)) return item as RetryCondition;
    const status =
      typeof item === "number" ? item : typeof item === "string" && /^\d{3}$/.test(item) ? Number(item) : 0;
    if (!Number.isInteger(status) || status < 500 || status > 599) {
      throw new ConfigError(
        `${field}[${i}]`,
        `must be ${conditions.join(", ")} or a 5xx status code, got ${show(item)}`,
      );
    }
    return status;
  });
}
