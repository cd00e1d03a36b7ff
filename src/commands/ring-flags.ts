import { readFileSync } from "node:fs";
import { ConfigError } from "../errors/config-error.ts";
import {
  defaultRingConfig,
  parseBalanceFactor,
  Ring,
  type RingConfig,
  validateRingConfig,
  withCompat,
} from "../ring/ring.ts";
import { integer } from "../utils/fields.ts";

/** The flags that describe a ring, shared by `lookup` and `plan` (parseArgs options). */
export const ringFlagOptions = {
  members: { type: "string" },
  "members-file": { type: "string" },
  partitions: { type: "string" },
  replicas: { type: "string" },
  hash: { type: "string" },
  placement: { type: "string" },
  order: { type: "string" },
  "balance-factor": { type: "string" },
  vnodes: { type: "string" },
  compat: { type: "string" },
} as const;

export interface RingFlags {
  members?: string | undefined;
  "members-file"?: string | undefined;
  partitions?: string | undefined;
  replicas?: string | undefined;
  hash?: string | undefined;
  placement?: string | undefined;
  order?: string | undefined;
  "balance-factor"?: string | undefined;
  vnodes?: string | undefined;
  compat?: string | undefined;
}

/** Builds the ring the flags describe, or throws ConfigError naming the flag. */
export function ringFromFlags(flags: RingFlags): Ring {
  const config: RingConfig = defaultRingConfig();
  if (flags.partitions !== undefined) config.partitions = integer(flags.partitions, "--partitions", 1);
  if (flags.replicas !== undefined) config.replicas = integer(flags.replicas, "--replicas", 1);
  if (flags.hash !== undefined) config.hash = flags.hash as RingConfig["hash"];
  if (flags.placement !== undefined) config.placement = flags.placement as RingConfig["placement"];
  if (flags.order !== undefined) config.order = flags.order as RingConfig["order"];
  if (flags["balance-factor"] !== undefined) {
    config.balanceFactor = parseBalanceFactor(flags["balance-factor"], "--balance-factor");
  }
  if (flags.vnodes !== undefined) config.vnodes = integer(flags.vnodes, "--vnodes", 1);
  if (flags.compat !== undefined) config.compat = flags.compat as RingConfig["compat"];
  validateRingConfig(config, "--");
  const { hash, order, placement } = flags;
  return Ring.build(membersFromFlags(flags), withCompat(config, { hash, order, placement }, "--"));
}

function membersFromFlags(flags: RingFlags): string[] {
  if (flags.members !== undefined && flags["members-file"] !== undefined) {
    throw new ConfigError("--members", "give --members or --members-file, not both");
  }
  if (flags["members-file"] !== undefined) {
    const path = flags["members-file"];
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError("--members-file", `cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`);
    }
    // One name a line, taken whole: names may hold commas and spaces.
    const names = text.split(/\r?\n/).filter((line) => line.trim() !== "" && !line.startsWith("#"));
    return checkedMembers("--members-file", names);
  }
  if (flags.members === undefined) throw new ConfigError("--members", "required (or --members-file)");
  return checkedMembers("--members", memberList(flags.members));
}

/** Splits a comma-separated flag value into trimmed names. */
export function memberList(value: string): string[] {
  return value.trim() === "" ? [] : value.split(",").map((name) => name.trim());
}

/** Rejects empty and duplicate names, and an empty list, naming `flag`. */
export function checkedMembers(flag: string, names: string[]): string[] {
  if (names.length === 0) throw new ConfigError(flag, "at least one member is required");
  const seen = new Set<string>();
  for (const name of names) {
    if (name === "") throw new ConfigError(flag, "empty member name");
    if (seen.has(name)) throw new ConfigError(flag, `duplicate member "${name}"`);
    seen.add(name);
  }
  return names;
}
