import { ConfigError } from "../errors/config-error.ts";
import { duration } from "../utils/duration.ts";
import { boolean, hostPort, integer, mapping, memberNames, show, tags } from "../utils/fields.ts";
import { type DnsConfig, parseDnsConfig } from "./dns.ts";
import { type EtcdConfig, parseEtcdConfig } from "./etcd/config.ts";
import { defaultFileSettle } from "./file.ts";
import { defaultHealthCheckOptions, type HealthCheckOptions } from "./health.ts";
import { memberUrl } from "./member-url.ts";
import { memberProtocol } from "./protocol.ts";
import { defaultSerfSourceOptions, type SerfSourceOptions } from "./serf/source.ts";
import { type TagMatch, tagMatches } from "./serf/tags.ts";
import type { StaticMember } from "./static.ts";

/** Active health checks as configured: the options plus a switch. */
export interface HealthConfig extends HealthCheckOptions {
  /** `false` turns the checks off without deleting the section. */
  enabled: boolean;
}

/** The `membership` section of the config: exactly one source, optionally health checks. */
export interface MembershipConfig {
  /** A fixed list of members. */
  static?: { members: StaticMember[] };
  /** A members file watched for changes. */
  file?: {
    path: string;
    /** Milliseconds between polls of the file (besides fs.watch). Default 500. */
    pollInterval: number;
    /** Milliseconds a changed file must stand still before it is read. Default 200. */
    settle: number;
  };
  /** A local Serf agent's RPC. */
  serf?: SerfSourceOptions;
  /** DNS records (SRV, A or AAAA) polled at an interval, e.g. a Kubernetes headless Service. */
  dns?: DnsConfig;
  /** Members registered in etcd under leases; with coordinated hand-offs by default. */
  etcd?: EtcdConfig;
  /**
   * Active HTTP health checks around whichever source is set. Absent: no
   * checks, every member the source lists as alive is in the ring.
   */
  health?: HealthConfig;
}

/** The source kinds this module builds; `health` sits beside them. */
export const membershipSourceKinds = ["static", "file", "serf", "dns", "etcd"] as const;

/**
 * Validates the raw `membership` section (parsed YAML, flags merged in),
 * throwing ConfigError with the full field path, e.g. `membership.static.members[1].url`.
 * Durations are strings with a unit: "500ms", "2s", "1m".
 */
export function parseMembershipConfig(raw: unknown, path = "membership"): MembershipConfig {
  const section = mapping(raw, path);
  const kinds = Object.keys(section).filter((k) => k !== "health");
  if (kinds.length !== 1) {
    throw new ConfigError(
      path,
      `needs exactly one source (${membershipSourceKinds.join(", ")}), got ${kinds.join(", ") || "none"}`,
    );
  }
  const kind = kinds[0] as string;
  const config: MembershipConfig = {};
  if (kind === "static") config.static = parseStatic(section.static, `${path}.static`);
  else if (kind === "file") config.file = parseFile(section.file, `${path}.file`);
  else if (kind === "serf") config.serf = parseSerf(section.serf, `${path}.serf`);
  else if (kind === "dns") config.dns = parseDnsConfig(section.dns, `${path}.dns`);
  else if (kind === "etcd") config.etcd = parseEtcdConfig(section.etcd, `${path}.etcd`);
  else {
    throw new ConfigError(`${path}.${kind}`, `unknown membership source (one of ${membershipSourceKinds.join(", ")})`);
  }
  if (section.health !== undefined) config.health = parseHealth(section.health, `${path}.health`);
  return config;
}

function parseStatic(raw: unknown, path: string): { members: StaticMember[] } {
  const section = mapping(raw, path, ["members"]);
  const members = section.members;
  if (!Array.isArray(members) || members.length === 0) {
    throw new ConfigError(`${path}.members`, "must be a non-empty list of {name, url}");
  }
  const parsed = members.map((m, i) => {
    const field = `${path}.members[${i}]`;
    const entry = mapping(m, field, ["name", "url", "tags", "protocol"]);
    if (typeof entry.name !== "string" || entry.name === "") {
      throw new ConfigError(`${field}.name`, "must be a non-empty string");
    }
    const member: StaticMember = {
      name: entry.name,
      url: memberUrl(entry.url, `${field}.url`),
      tags: tags(entry.tags ?? {}, `${field}.tags`),
    };
    if (entry.protocol !== undefined) member.protocol = memberProtocol(entry.protocol, `${field}.protocol`);
    return member;
  });
  memberNames(
    parsed.map((m) => m.name),
    `${path}.members`,
  );
  return { members: parsed };
}

function parseFile(raw: unknown, path: string): NonNullable<MembershipConfig["file"]> {
  const section = mapping(raw, path, ["path", "pollInterval", "settle"]);
  if (typeof section.path !== "string" || section.path === "") {
    throw new ConfigError(`${path}.path`, "must be the path of a members file");
  }
  return {
    path: section.path,
    pollInterval: section.pollInterval === undefined ? 500 : duration(section.pollInterval, `${path}.pollInterval`),
    settle: section.settle === undefined ? defaultFileSettle : duration(section.settle, `${path}.settle`),
  };
}

function parseSerf(raw: unknown, path: string): SerfSourceOptions {
  const fields = ["rpc", "authKey", "tags", "tagMatch", "urlTag", "urlScheme", "reconnectMax", "timeout", "protocol"];
  const section = raw === null || raw === undefined ? {} : mapping(raw, path, fields);
  const options = defaultSerfSourceOptions();
  if (section.rpc !== undefined) {
    hostPort(section.rpc, `${path}.rpc`, { dial: true });
    options.rpc = section.rpc as string;
  }
  if (section.authKey !== undefined) {
    if (typeof section.authKey !== "string") throw new ConfigError(`${path}.authKey`, "must be a string");
    options.authKey = section.authKey === "" ? undefined : section.authKey;
  }
  if (section.tags !== undefined) {
    options.tags = tags(section.tags, `${path}.tags`);
    for (const [tag, pattern] of Object.entries(options.tags)) {
      try {
        new RegExp(pattern);
      } catch (error) {
        throw new ConfigError(`${path}.tags.${tag}`, `not a regular expression (${(error as Error).message})`);
      }
    }
  }
  if (section.tagMatch !== undefined) {
    if (!tagMatches.includes(section.tagMatch as TagMatch)) {
      throw new ConfigError(`${path}.tagMatch`, `must be all or any, got ${JSON.stringify(section.tagMatch)}`);
    }
    options.tagMatch = section.tagMatch as TagMatch;
  }
  if (section.urlTag !== undefined) {
    if (typeof section.urlTag !== "string" || section.urlTag === "") {
      throw new ConfigError(`${path}.urlTag`, "must be a tag name");
    }
    options.urlTag = section.urlTag;
  }
  if (section.urlScheme !== undefined) {
    if (section.urlScheme !== "http" && section.urlScheme !== "https") {
      throw new ConfigError(`${path}.urlScheme`, `must be http or https, got ${show(section.urlScheme)}`);
    }
    options.urlScheme = section.urlScheme;
  }
  if (section.reconnectMax !== undefined) {
    options.reconnectMax = duration(section.reconnectMax, `${path}.reconnectMax`);
    options.reconnectMin = Math.min(options.reconnectMin, options.reconnectMax);
  }
  if (section.timeout !== undefined) options.timeout = duration(section.timeout, `${path}.timeout`);
  if (section.protocol !== undefined) options.protocol = memberProtocol(section.protocol, `${path}.protocol`);
  return options;
}

function parseHealth(raw: unknown, path: string): HealthConfig {
  const section = mapping(raw, path, ["enabled", "path", "interval", "timeout", "rise", "fall", "reconnectInterval"]);
  const health: HealthConfig = { enabled: true, ...defaultHealthCheckOptions() };
  if (section.enabled !== undefined) {
    health.enabled = boolean(section.enabled, `${path}.enabled`);
  }
  if (section.path !== undefined) {
    if (typeof section.path !== "string" || !section.path.startsWith("/")) {
      throw new ConfigError(`${path}.path`, `must start with "/", got ${show(section.path)}`);
    }
    health.path = section.path;
  }
  for (const field of ["interval", "timeout", "reconnectInterval"] as const) {
    if (section[field] !== undefined) health[field] = duration(section[field], `${path}.${field}`);
  }
  for (const field of ["rise", "fall"] as const) {
    if (section[field] !== undefined) health[field] = integer(section[field], `${path}.${field}`, 1, 100);
  }
  return health;
}

/**
 * Parses `--members name=url,name=url` into static members, naming `flag`
 * in errors. Names may not contain "=" or ",".
 */
export function membersFromFlag(value: string, flag = "--members"): StaticMember[] {
  const members = value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const at = part.indexOf("=");
      if (at <= 0) throw new ConfigError(flag, `expected name=url, got ${show(part)}`);
      return { name: part.slice(0, at), url: memberUrl(part.slice(at + 1), flag), tags: {} };
    });
  memberNames(
    members.map((m) => m.name),
    flag,
  );
  return members;
}
