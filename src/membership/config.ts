import { ConfigError } from "../errors/config-error.ts";
import type { StaticMember } from "./static.ts";

/** The `membership` section of the config: exactly one source. */
export interface MembershipConfig {
  static?: { members: StaticMember[] };
}

/**
 * Validates the raw `membership` section (parsed YAML, flags merged in),
 * throwing ConfigError with the full field path, e.g. `membership.static.members[1].url`.
 */
export function parseMembershipConfig(raw: unknown, path = "membership"): MembershipConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(path, "must be a mapping");
  const section = raw as Record<string, unknown>;
  const kinds = Object.keys(section).filter((k) => k !== "health");
  if (kinds.length !== 1)
    throw new ConfigError(path, `needs exactly one source (static), got ${kinds.join(", ") || "none"}`);
  const staticSection = section.static as { members?: unknown } | undefined;
  if (staticSection === undefined) throw new ConfigError(`${path}.${kinds[0]}`, "unknown membership source");
  const members = staticSection.members;
  if (!Array.isArray(members) || members.length === 0) {
    throw new ConfigError(`${path}.static.members`, "must be a non-empty list of {name, url}");
  }
  return {
    static: {
      members: members.map((m, i) => {
        const field = `${path}.static.members[${i}]`;
        const { name, url, tags } = (m ?? {}) as Record<string, unknown>;
        if (typeof name !== "string" || name === "")
          throw new ConfigError(`${field}.name`, "must be a non-empty string");
        if (typeof url !== "string" || !URL.canParse(url))
          throw new ConfigError(`${field}.url`, `must be a URL, got ${JSON.stringify(url)}`);
        return { name, url, tags: (tags ?? {}) as Record<string, string> };
      }),
    },
  };
}
