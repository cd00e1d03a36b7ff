#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { check } from "./commands/check.ts";
import { type Command, commandHelp, firstSentence, wrap } from "./commands/command.ts";
import { parseCommandLine } from "./commands/flags.ts";
import { lookup } from "./commands/lookup.ts";
import { memberCommand } from "./commands/member.ts";
import { plan } from "./commands/plan.ts";
import { serve } from "./commands/serve.ts";
import { ConfigError } from "./errors/config-error.ts";

const commands: readonly Command[] = [serve, check, lookup, plan, memberCommand];

const usage = `usage: ringroute <command> [flags]

commands:
${commands.map((c) => `  ${c.synopsis}\n${wrap(firstSentence(c.description), "      ")}`).join("\n")}

  ringroute <command> --help   every flag of a command, with its default
  ringroute --version          the version
`;

function version(): string {
  // package.json sits one level above both src/ and dist/.
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    process.stderr.write(usage);
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage);
    return 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`ringroute ${version()}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (command === undefined) {
      throw new ConfigError("command", `unknown command "${name}" (try: ${commands.map((c) => c.name).join(", ")})`);
    }
    const line = parseCommandLine(args, command.flags, command.positionals);
    if (line.values.help) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    await command.run(line, args);
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
