import { ConfigError } from "../errors/config-error.ts";

/**
 * Turns what node:util's parseArgs throws into a ConfigError naming the flag,
 * so every bad command line ends the same way: one line, exit 2.
 */
export function usageError(error: unknown): unknown {
  if (!(error instanceof Error) || !("code" in error)) return error;
  const flag = /'(-[^'\s,]+)/.exec(error.message)?.[1] ?? "arguments";
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new ConfigError(flag, "unknown option");
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return new ConfigError(flag, "needs a value");
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new ConfigError("arguments", `unexpected ${error.message.match(/'[^']*'/)?.[0] ?? "argument"}`);
    default:
      return error;
  }
}
