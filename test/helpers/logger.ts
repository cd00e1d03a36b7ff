import { pino } from "pino";
import type { Logger } from "../../src/utils/logger.ts";

/** One log entry as pino wrote it: level name, message and the structured fields. */
export interface Entry {
  level: string;
  msg: string;
  // biome-ignore lint/suspicious/noExplicitAny: log fields are whatever the component logged
  [field: string]: any;
}

/** A real pino logger (level debug by default) whose entries the test reads back. */
export function recordingLogger(level = "debug"): { logger: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const logger = pino(
    { level, base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void entries.push(JSON.parse(line)) },
  );
  return { logger, entries };
}
