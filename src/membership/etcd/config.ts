import { ConfigError } from "../../errors/config-error.ts";
import { duration } from "../../utils/duration.ts";
import { mapping, show } from "../../utils/fields.ts";

/** How ringroute reaches etcd and reads one cluster's keys there. */
export interface EtcdConnection {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** The cluster's name; the default prefix is `/ringroute/<cluster>/`. */
  cluster: string;
  /** Where the cluster's keys live; ends with "/". */
  prefix: string;
  /** PEM file paths for TLS to etcd: `ca` to trust, `cert` + `key` for a client certificate. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** etcd user and password (etcd's auth); both or neither. */
  username?: string;
  password?: string;
  /** Milliseconds to connect to etcd. */
  dialTimeout: number;
}

/** The `membership.etcd` section. */
export interface EtcdConfig extends EtcdConnection {
  /**
   * `coordinated`: the ring follows the leader's versions and each partition
   * stays with its old owner until the new owner has it ready. `immediate`:
   * the ring changes as soon as a member's key does (like the other sources).
   */
  handoff: "coordinated" | "immediate";
  /** Milliseconds a new owner waits for the old owner's release before acquiring anyway. */
  handoffTimeout: number;
  /** Milliseconds a request waits for a partition no member holds ready, then 503 partition_moving. */
  handoffWait: number;
  /**
   * Tag → regular expression a member's tag must match to be in the ring, as
   * for Serf: unanchored, a missing tag is matched as "".
   */
  tags: Record<string, string>;
}

export function defaultEtcdConfig(cluster = "ringroute"): EtcdConfig {
  return {
    endpoints: ["http://127.0.0.1:2379"],
    cluster,
    prefix: `/ringroute/${cluster}/`,
    dialTimeout: 5000,
    handoff: "coordinated",
    handoffTimeout: 30_000,
    handoffWait: 2000,
    tags: {},
  };
}

const fields = [
  "endpoints",
  "cluster",
  "prefix",
  "tls",
  "username",
  "password",
  "dialTimeout",
  "handoff",
  "handoffTimeout",
  "handoffWait",
  "tags",
];

/** Validates `membership.etcd`, throwing ConfigError with the dotted field. */
export function parseEtcdConfig(raw: unknown, path = "membership.etcd"): EtcdConfig {
  const section = raw === null || raw === undefined ? {} : mapping(raw, path, fields);
  const cluster = section.cluster === undefined ? "ringroute" : section.cluster;
  if (typeof cluster !== "string" || !/^[A-Za-z0-9._-]+$/.test(cluster)) {
    throw new ConfigError(
      `${path}.cluster`,
      `must be a name of letters, digits, ".", "_" or "-", got ${show(cluster)}`,
    );
  }
  const config = defaultEtcdConfig(cluster);
  if (section.endpoints !== undefined) config.endpoints = endpoints(section.endpoints, `${path}.endpoints`);
  if (section.prefix !== undefined) {
    if (typeof section.prefix !== "string" || !section.prefix.startsWith("/") || !section.prefix.endsWith("/")) {
      throw new ConfigError(`${path}.prefix`, `must start and end with "/", got ${show(section.prefix)}`);
    }
    config.prefix = section.prefix;
  }
  if (section.tls !== undefined) {
    const tls = mapping(section.tls, `${path}.tls`, ["ca", "cert", "key"]);
    for (const [field, value] of Object.entries(tls)) {
      if (typeof value !== "string" || value === "") {
        throw new ConfigError(`${path}.tls.${field}`, "must be the path of a PEM file");
      }
    }
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new ConfigError(`${path}.tls`, "cert and key go together");
    }
    config.tls = tls as EtcdConfig["tls"];
  }
  for (const field of ["username", "password"] as const) {
    if (section[field] !== undefined) {
      if (typeof section[field] !== "string") throw new ConfigError(`${path}.${field}`, "must be a string");
      config[field] = section[field] as string;
    }
  }
  if ((config.username === undefined) !== (config.password === undefined)) {
    throw new ConfigError(
      `${path}.${config.username === undefined ? "username" : "password"}`,
      "username and password go together",
    );
  }
  if (section.dialTimeout !== undefined) config.dialTimeout = duration(section.dialTimeout, `${path}.dialTimeout`);
  if (section.handoffTimeout !== undefined) {
    config.handoffTimeout = duration(section.handoffTimeout, `${path}.handoffTimeout`);
  }
  if (section.handoffWait !== undefined) {
    config.handoffWait = duration(section.handoffWait, `${path}.handoffWait`, { zero: true });
  }
  if (section.handoff !== undefined) {
    if (section.handoff !== "coordinated" && section.handoff !== "immediate") {
      throw new ConfigError(`${path}.handoff`, `must be coordinated or immediate, got ${show(section.handoff)}`);
    }
    config.handoff = section.handoff;
  }
  if (section.tags !== undefined) {
    const tags = mapping(section.tags, `${path}.tags`);
    for (const [tag, pattern] of Object.entries(tags)) {
      if (typeof pattern !== "string") throw new ConfigError(`${path}.tags.${tag}`, "must be a string");
      try {
        new RegExp(pattern);
      } catch (error) {
        throw new ConfigError(`${path}.tags.${tag}`, `not a regular expression (${(error as Error).message})`);
      }
    }
    config.tags = tags as Record<string, string>;
  }
  return config;
}

/** A list of http(s) URLs, or one string of them separated by commas (as a flag gives it). */
export function endpoints(raw: unknown, field: string): string[] {
  const list = typeof raw === "string" ? raw.split(",").map((s) => s.trim()) : raw;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(field, `must be a non-empty list of etcd URLs, got ${show(raw)}`);
  }
  for (const url of list) {
    if (typeof url !== "string" || !/^https?:\/\//.test(url) || !URL.canParse(url)) {
      throw new ConfigError(field, `must be http(s) URLs like http://127.0.0.1:2379, got ${show(url)}`);
    }
  }
  return list as string[];
}
