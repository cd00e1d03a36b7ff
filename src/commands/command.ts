import { type CommandLine, type Flag, flagHelp } from "./flags.ts";

/** A subcommand: its synopsis and flags (for help and parsing) and what it runs. */
export interface Command {
  name: string;
  synopsis: string;
  /** A few lines on what it does. */
  description: string;
  flags: readonly Flag[];
  /** Whether it takes arguments besides flags (lookup's keys). */
  positionals?: boolean;
  /** Runs with the parsed command line; `args` as given, for commands that read them again (reload). */
  run(line: CommandLine, args: string[]): Promise<void>;
}

/** `ringroute COMMAND --help`. */
export function commandHelp(command: Command): string {
  return `usage: ${command.synopsis}\n\n${command.description}\n\nflags:\n${flagHelp(command.flags)}\n`;
}
