#!/usr/bin/env node
import { lookup, lookupUsage } from "./commands/lookup.ts";
import { member } from "./commands/member.ts";
import { plan, planUsage } from "./commands/plan.ts";
import { serve, serveUsage } from "./commands/serve.ts";
import { ConfigError } from "./errors/config-error.ts";

const ringFlagsUsage = `ring flags:
  --members a,b,c | --members-file FILE (one name a line)
  --partitions P (512)  --replicas R (3)  --hash fnv1a32|fnv1a64
  --placement jump|balanced  --order lexical|natural`;

const commands: Record<string, (args: string[]) => Promise<void>> = { serve, lookup, plan, member };

const usage = `usage: ringroute <command> [flags]

${serveUsage}

${lookupUsage}

${planUsage}

${ringFlagsUsage}
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`ringroute: unknown command "${name}" (try: ${Object.keys(commands).join(", ")})\n`);
    return 2;
  }
  try {
    await command(args);
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ringroute: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
