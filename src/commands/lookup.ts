import { createInterface } from "node:readline";
import type { Command } from "./command.ts";
import { ringCommandFlags, ringFromCommandLine } from "./ring-flags.ts";

export const lookup: Command = {
  name: "lookup",
  synopsis: "ringroute lookup [flags] [KEY ...]",
  description: `Prints {"key", "partition", "owners"} as one JSON line a key. Keys come from
the arguments, or one a line from standard input when none are given.`,
  flags: ringCommandFlags,
  positionals: true,
  async run({ values, positionals }) {
    const ring = ringFromCommandLine(values);
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
