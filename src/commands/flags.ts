/**
 * The command line's side of the config: which flag and `RINGROUTE_*`
 * variable set which config field, how a file, variables and flags merge into
 * one raw config for `parseConfig`, and the help text, whose defaults are read
 * from `defaultConfig()` so they cannot drift from it.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { type Config, defaultConfig, keySourceText, parseConfig } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import { membersFromFlag } from "../membership/config.ts";
import { yamlProblem } from "../utils/yaml-problem.ts";
import { usageError } from "./usage-error.ts";

/** One flag: its value's placeholder, the variable and config field it stands for, and a line of help. */
export interface Flag {
  name: string;
  /** Placeholder in help (`P`, `FILE`); absent for a boolean switch. */
  value?: string;
  /** The environment variable that sets the same field (an empty one counts as unset). */
  env?: string;
  /** The dotted config field the flag and variable set; absent when the command reads the flag itself. */
  field?: string;
  help: string;
  /** Shown as the default when the field's default says too little. */
  shownDefault?: string;
}

export const configFlag: Flag = {
  name: "config",
  value: "FILE",
  env: "RINGROUTE_CONFIG",
  help: "YAML config; flags and RINGROUTE_* override it",
};

/** Ring settings, shared by `serve`, `check`, `lookup` and `plan`. */
export const ringFlags: readonly Flag[] = [
  {
    name: "partitions",
    value: "P",
    env: "RINGROUTE_PARTITIONS",
    field: "ring.partitions",
    help: "partitions keys hash into",
  },
  { name: "replicas", value: "R", env: "RINGROUTE_REPLICAS", field: "ring.replicas", help: "owners per partition" },
  { name: "hash", value: "fnv1a32|fnv1a64", env: "RINGROUTE_HASH", field: "ring.hash", help: "key hash" },
  {
    name: "placement",
    value: "balanced|jump|modulo|vnodes",
    env: "RINGROUTE_PLACEMENT",
    field: "ring.placement",
    help: "partitions onto members",
  },
  { name: "order", value: "lexical|natural", env: "RINGROUTE_ORDER", field: "ring.order", help: "member sort order" },
  {
    name: "balance-factor",
    value: "F|auto",
    env: "RINGROUTE_BALANCE_FACTOR",
    field: "ring.balanceFactor",
    help: "balanced: most partitions a member holds, × the mean",
  },
  { name: "vnodes", value: "N", env: "RINGROUTE_VNODES", field: "ring.vnodes", help: "vnodes: points per member" },
  {
    name: "compat",
    value: "libring",
    env: "RINGROUTE_COMPAT",
    field: "ring.compat",
    help: "libring's code's choices (fnv1a64, jump, lexical)",
  },
];

/** Flags of `serve` and `check`; each sets one config field (flags win over variables, which win over the file). */
export const serveFlags: readonly Flag[] = [
  configFlag,
  {
    name: "listen",
    value: "HOST:PORT",
    env: "RINGROUTE_LISTEN",
    field: "listen",
    help: "where the proxy accepts traffic",
  },
  { name: "admin", value: "HOST:PORT", env: "RINGROUTE_ADMIN", field: "admin", help: "metrics, health, ring, events" },
  {
    name: "members",
    value: "name=url,…",
    env: "RINGROUTE_MEMBERS",
    field: "membership.static.members",
    help: "a static member list (replaces the file's source, keeps its health checks)",
    shownDefault: "none: three demo backends",
  },
  ...ringFlags,
  {
    name: "key",
    value: "SOURCE",
    env: "RINGROUTE_KEY",
    field: "key.from",
    help: "path | header:N | query:N | cookie:N | regex:P",
  },
  {
    name: "key-missing",
    value: "reject|any",
    env: "RINGROUTE_KEY_MISSING",
    field: "key.missing",
    help: "no key: 400, or any member",
  },
  {
    name: "retry-attempts",
    value: "N",
    env: "RINGROUTE_RETRY_ATTEMPTS",
    field: "proxy.retry.attempts",
    help: "further members tried",
  },
  {
    name: "connect-timeout",
    value: "DURATION",
    env: "RINGROUTE_CONNECT_TIMEOUT",
    field: "proxy.timeouts.connect",
    help: "to open a connection to a member",
  },
  {
    name: "response-timeout",
    value: "DURATION",
    env: "RINGROUTE_RESPONSE_TIMEOUT",
    field: "proxy.timeouts.response",
    help: "for a member's response headers",
  },
  {
    name: "ring-info",
    value: "BOOL",
    env: "RINGROUTE_RING_INFO",
    field: "proxy.headers.ringInfo",
    help: "x-ringroute-* response headers",
  },
  {
    name: "shutdown-timeout",
    value: "DURATION",
    env: "RINGROUTE_SHUTDOWN_TIMEOUT",
    field: "shutdownTimeout",
    help: "in-flight requests get this long on SIGTERM",
  },
  {
    name: "workers",
    value: "N|auto",
    env: "RINGROUTE_WORKERS",
    field: "workers",
    help: "proxy processes (auto: one per core)",
  },
  {
    name: "shutdown-delay",
    value: "DURATION",
    env: "RINGROUTE_SHUTDOWN_DELAY",
    field: "shutdownDelay",
    help: "serve on with /readyz 503 after SIGTERM",
  },
  {
    name: "log-level",
    value: "LEVEL",
    env: "RINGROUTE_LOG_LEVEL",
    field: "log.level",
    help: "fatal … trace, or silent",
  },
  {
    name: "log-format",
    value: "json|pretty|auto",
    env: "RINGROUTE_LOG_FORMAT",
    field: "log.format",
    help: "auto: pretty on a terminal",
  },
  {
    name: "access-log",
    value: "BOOL",
    env: "RINGROUTE_ACCESS_LOG",
    field: "access.log",
    help: "one JSON line a request on stdout",
  },
  {
    name: "http2",
    value: "BOOL",
    env: "RINGROUTE_HTTP2",
    field: "http2",
    help: "HTTP/2 clients: h2 by ALPN, h2c prior knowledge",
  },
];

/**
 * Variables with no flag: secrets, which a command line would show to every
 * user of the machine. Each applies only where the config has the section
 * (a Serf auth key for a Serf source).
 */
export const secretVariables: readonly { env: string; field: string }[] = [
  { env: "RINGROUTE_SERF_AUTH_KEY", field: "membership.serf.authKey" },
  { env: "RINGROUTE_ETCD_PASSWORD", field: "membership.etcd.password" },
];

export const helpFlag: Flag = { name: "help", help: "print this help and exit" };

export interface ConfigInputs {
  env?: Record<string, string | undefined>;
  readFile?: (path: string) => string;
}

export interface CommandLine {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses `args` against `flags` (plus -h/--help); a bad flag is a ConfigError naming it. */
export function parseCommandLine(args: string[], flags: readonly Flag[], positionals = false): CommandLine {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const flag of flags) options[flag.name] = { type: flag.value === undefined ? "boolean" : "string" };
  try {
    const parsed = parseArgs({ args, options, allowPositionals: positionals, strict: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (error) {
    throw usageError(error);
  }
}

/**
 * The raw config of a command line: the file named by `--config` or
 * RINGROUTE_CONFIG, then RINGROUTE_* variables, then flags, each written into
 * the field it sets. `parseConfig` then validates every value under its field.
 */
export function rawConfig(
  values: CommandLine["values"],
  flags: readonly Flag[],
  inputs: ConfigInputs = {},
): Record<string, unknown> {
  const env = inputs.env ?? process.env;
  const readFile = inputs.readFile ?? ((path: string) => readFileSync(path, "utf8"));
  const file = (values.config as string | undefined) ?? (env.RINGROUTE_CONFIG || undefined);
  const raw: Record<string, unknown> = file === undefined ? {} : readConfigFile(file, readFile);
  for (const flag of flags) {
    const value = flag.env === undefined ? undefined : env[flag.env];
    if (flag.field !== undefined && value !== undefined && value !== "") setField(raw, flag.field, value);
  }
  for (const flag of flags) {
    const value = values[flag.name];
    if (flag.field !== undefined && typeof value === "string") setField(raw, flag.field, value);
  }
  for (const { env: name, field } of secretVariables) {
    const value = env[name];
    const path = field.split(".");
    let section: unknown = raw;
    for (const part of path.slice(0, -1)) section = (section as Record<string, unknown> | undefined)?.[part];
    if (value && typeof section === "object" && section !== null && !Array.isArray(section)) {
      (section as Record<string, unknown>)[path[path.length - 1] as string] = value;
    }
  }
  return raw;
}

/** The config of `ringroute serve ARGS` (or `check`): defaults, file, variables, flags, validated. */
export function loadConfig(args: string[], inputs: ConfigInputs = {}): Config {
  return parseConfig(rawConfig(parseCommandLine(args, serveFlags).values, serveFlags, inputs));
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
    throw new ConfigError("--config", `${path} is not valid YAML: ${yamlProblem(error, text)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed))
    throw new ConfigError("--config", `${path} must hold a mapping`);
  return parsed as Record<string, unknown>;
}

function setField(raw: Record<string, unknown>, field: string, value: string): void {
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

/** A field's default as help shows it: durations with a unit, addresses as host:port. */
export function defaultText(field: string): string {
  let value: unknown = defaultConfig();
  for (const part of field.split(".")) value = (value as Record<string, unknown> | undefined)?.[part];
  if (field === "key.from") return keySourceText(value as Config["key"]["from"]);
  if (typeof value === "object" && value !== null && "port" in value) {
    const { host, port } = value as { host: string; port: number };
    return `${host}:${port}`;
  }
  if (typeof value === "number" && /timeout|delay|Timeout|Delay|timeouts\./.test(field)) return durationText(value);
  return String(value);
}

function durationText(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Help lines for `flags`: flag and placeholder, what it does, its default and variable. */
export function flagHelp(flags: readonly Flag[]): string {
  const rows = [...flags, helpFlag].map((flag) => {
    const left = `${flag.name === "help" ? "-h, " : ""}--${flag.name}${flag.value === undefined ? "" : ` ${flag.value}`}`;
    const shown = flag.shownDefault ?? (flag.field === undefined ? undefined : defaultText(flag.field));
    const notes = [
      flag.field === undefined ? undefined : flag.field,
      shown === undefined ? undefined : `default ${shown}`,
      flag.env,
    ].filter((note) => note !== undefined);
    return [left, `${flag.help}${notes.length === 0 ? "" : ` (${notes.join("; ")})`}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`).join("\n");
}
