import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { ringFlagOptions, ringFromFlags } from "./ring-flags.ts";
import { usageError } from "./usage-error.ts";

export const lookupUsage = `ringroute lookup [ring flags] [KEY ...]
  Prints {"key", "partition", "owners"} as one JSON line a key. Keys come from
  the arguments, or one a line from standard input when none are given.`;

export async function lookup(args: string[]): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    throw usageError(error);
  }
  const ring = ringFromFlags(parsed.values);
  const print = (key: string) => {
    const owners = ring.ownersOf(key);
    process.stdout.write(`${JSON.stringify({ key, partition: ring.partitionOf(key), owners })}\n`);
  };
  if (parsed.positionals.length > 0) {
    for (const key of parsed.positionals) print(key);
    return;
  }
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
    print(line);
  }
}

function parse(args: string[]) {
  return parseArgs({ args, options: ringFlagOptions, allowPositionals: true, strict: true });
}
