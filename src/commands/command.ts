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

/** A command's first sentence, whole: descriptions are wrapped, so their first line may stop mid-sentence. */
export function firstSentence(description: string): string {
  const paragraph = (description.split(/\n\s*\n/)[0] ?? "").replace(/\s+/g, " ").trim();
  return /^.*?[.!?](?=\s|$)/.exec(paragraph)?.[0] ?? paragraph;
}

/** `text` in lines of at most `width` characters, each starting with `indent`. */
export function wrap(text: string, indent: string, width = 88): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(indent + line);
  return lines.join("\n");
}
