/**
 * The one logger type. `ringroute serve` creates a pino logger at the edge
 * and passes it down; components log through what they are given and never
 * print. Library users pass their own pino logger, or get `silentLogger`.
 */
import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/** A logger that drops everything: the default for components built without one. */
export const silentLogger: Logger = pino({ enabled: false });
