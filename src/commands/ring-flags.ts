import { readFileSync } from "node:fs";
import { type Config, parseConfig } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import { parseMembersFile } from "../membership/file.ts";
import { Ring } from "../ring/ring.ts";
import { memberNames } from "../utils/fields.ts";
import { type CommandLine, type ConfigInputs, configFlag, type Flag, rawConfig, ringFlags } from "./flags.ts";

/**
 * The flags that describe a ring, shared by `lookup` and `plan`: the ring
 * settings as `serve` reads them (file, RINGROUTE_*, flags), and members from
 * a flag, a members file, RINGROUTE_MEMBERS or the config's static or file source.
 */
export const ringCommandFlags: readonly Flag[] = [
  configFlag,
  {
    name: "members",
    value: "a,b,c",
    env: "RINGROUTE_MEMBERS",
    help: "member names (name=url entries are read for their names)",
  },
  {
    name: "members-file",
    value: "FILE",
    help: 'a members file: one name a line, or as the file source reads it ("name url" lines, YAML, JSON)',
  },
  ...ringFlags,
];

/** Builds the ring a command line describes, or throws ConfigError naming the flag or field. */
export function ringFromCommandLine(values: CommandLine["values"], inputs: ConfigInputs = {}): Ring {
  const config = parseConfig(rawConfig(values, ringCommandFlags, inputs));
  return Ring.build(members(values, config, inputs), config.ring);
}

function members(values: CommandLine["values"], config: Config, inputs: ConfigInputs): string[] {
  const env = inputs.env ?? process.env;
  const flag = values.members as string | undefined;
  const file = values["members-file"] as string | undefined;
  if (flag !== undefined && file !== undefined) {
    throw new ConfigError("--members", "give --members or --members-file, not both");
  }
  if (file !== undefined) return membersFile(file, "--members-file");
  if (flag !== undefined) return memberNames(memberList(flag), "--members");
  if (env.RINGROUTE_MEMBERS) return memberNames(memberList(env.RINGROUTE_MEMBERS), "RINGROUTE_MEMBERS");
  const membership = config.membership;
  if (membership?.static) return membership.static.members.map((m) => m.name);
  if (membership?.file) return membersFile(membership.file.path, "membership.file.path");
  if (membership !== undefined) {
    throw new ConfigError("--members", "required: the config's membership source is not static or file");
  }
  throw new ConfigError("--members", "required (or --members-file, or static or file members in --config)");
}

function membersFile(path: string, field: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  const names = bareNames(text);
  if (names !== undefined) return memberNames(names, field);
  return parseMembersFile(text, path).map((m) => m.name);
}

/**
 * A plain list of names, one a line (blank lines and # comments skipped), as
 * `kubectl get pods -o name` (its `pod/` prefix dropped) or libring configs
 * give them; undefined when a line holds more than a name. Only placement
 * needs names: the file source, which routes, still needs a URL for each.
 */
export function bareNames(text: string): string[] | undefined {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (lines.length === 0 || lines.some((line) => /\s/.test(line) || line.includes("://") || /^[-[{]/.test(line))) {
    return undefined;
  }
  return lines.map((line) => line.replace(/^pod\//, ""));
}

/** Splits a comma-separated flag value into trimmed names; `name=url` entries give their name. */
export function memberList(value: string): string[] {
  if (value.trim() === "") return [];
  return value.split(",").map((entry) => {
    const at = entry.indexOf("=");
    return (at < 0 ? entry : entry.slice(0, at)).trim();
  });
}
