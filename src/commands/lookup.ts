import { createInterface } from "node:readline";
import { type Config, keySourceText, parseConfig } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import { KeyError } from "../errors/key-error.ts";
import { compileKey } from "../proxy/key.ts";
import { normalisedTarget, unsafePath } from "../proxy/path.ts";
import type { Ring } from "../ring/ring.ts";
import type { Command } from "./command.ts";
import { type Flag, rawConfig } from "./flags.ts";
import { ringCommandFlags, ringFromCommandLine } from "./ring-flags.ts";

const lookupFlags: readonly Flag[] = [
  ...ringCommandFlags,
  {
    name: "target",
    value: "PATH",
    help: "a request target: print the key the proxy derives from it under key.from, then its owners",
  },
  {
    name: "key",
    value: "SOURCE",
    env: "RINGROUTE_KEY",
    field: "key.from",
    help: "with --target: path | query:N | regex:P (default: the config's key.from)",
  },
];

export const lookup: Command = {
  name: "lookup",
  synopsis: "ringroute lookup [flags] [KEY ...] | ringroute lookup [flags] --target PATH",
  description: `Prints {"key", "partition", "owners"} as one JSON line a key. Keys come from
the arguments, or one a line from standard input when none are given; they are
hashed as given. With --target, the key is the one the proxy derives from that
request target under key.from (dot-segments removed, as the member receives it):
{"target", "key", "partition", "owners"}, or {"target", "status", "error",
"message"} for a target the proxy refuses.`,
  flags: lookupFlags,
  positionals: true,
  async run({ values, positionals }) {
    const ring = ringFromCommandLine(values);
    const target = values.target as string | undefined;
    if (target !== undefined) {
      if (positionals.length > 0) throw new ConfigError("--target", "give --target or keys, not both");
      const config = parseConfig(rawConfig(values, lookupFlags));
      process.stdout.write(`${JSON.stringify(lookupTarget(target, config.key, ring))}\n`);
      return;
    }
    const print = (key: string) => {
      const owners = ring.ownersOf(key);
      process.stdout.write(`${JSON.stringify({ key, partition: ring.partitionOf(key), owners })}\n`);
    };
    if (positionals.length > 0) {
      for (const key of positionals) print(key);
      return;
    }
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
      print(line);
    }
  },
};

/** What `lookup --target` prints: the key the proxy reads from `target` and its owners, or why it is refused. */
export type TargetLookup =
  | { target: string; key: string | null; partition: number; owners: readonly string[] }
  | { target: string; status: number; error: string; message: string };

/**
 * The key the proxy derives from request target `target` under `key` (from
 * the same normalised form the proxy reads it from), and its owners. Header
 * and cookie keys are not in a target: a ConfigError naming `--target`.
 */
export function lookupTarget(target: string, key: Config["key"], ring: Ring): TargetLookup {
  const kind = key.from.kind;
  if (kind === "header" || kind === "cookie") {
    throw new ConfigError(
      "--target",
      `key.from ${keySourceText(key.from)} is not in a request target; --target works with path, query:NAME and regex:PATTERN`,
    );
  }
  const refused = (status: number, error: string, message: string) => ({ target, status, error, message });
  if (target === "" || (target !== "*" && target.charCodeAt(0) !== 47 && !/^https?:\/\//i.test(target))) {
    return refused(400, "bad_request", "a request target starts with / (or is absolute http(s)://, or *)");
  }
  const normal = normalisedTarget(target);
  if (normal === unsafePath) {
    return refused(400, "bad_path", "a segment hides a dot-segment behind an escaped slash or backslash");
  }
  let k: string | undefined;
  try {
    k = compileKey(key).extract({ url: normal, names: [], values: [] });
  } catch (error) {
    if (!(error instanceof KeyError)) throw error;
    return refused(error.status, error.code, error.message);
  }
  if (k === undefined) {
    if (key.missing === "reject") {
      const source = compileKey(key).source;
      return refused(400, "missing_key", `the request has no key: looked in ${source}`);
    }
    // key.missing: any: no owner; the proxy sends it to any live member.
    return { target, key: null, partition: -1, owners: [] };
  }
  return { target, key: k, partition: ring.partitionOf(k), owners: ring.ownersOf(k) };
}
