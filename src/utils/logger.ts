/**
 * The one logger type. `ringroute serve` creates a pino logger at the edge
 * and passes it down; components log through what they are given and never
 * print. Library users pass their own pino logger, or get `silentLogger`.
 */
import type { Logger } from "pino";

export type { Logger } from "pino";

const drop = () => {};

/**
 * A logger that drops everything: the default for components built without
 * one. Not `pino({ enabled: false })`: importing the library should not load
 * pino for a logger that never writes.
 */
export const silentLogger: Logger = {
  level: "silent",
  levels: { values: {}, labels: {} },
  fatal: drop,
  error: drop,
  warn: drop,
  info: drop,
  debug: drop,
  trace: drop,
  silent: drop,
  child: () => silentLogger,
  bindings: () => ({}),
  setBindings: drop,
  flush: drop,
  isLevelEnabled: () => false,
  on: () => silentLogger,
} as unknown as Logger;
