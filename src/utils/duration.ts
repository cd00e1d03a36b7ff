import { ConfigError } from "../errors/config-error.ts";

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** setTimeout's limit: longer delays fire at once. */
const maxMs = 2 ** 31 - 1;

/**
 * Milliseconds from "500ms", "2s", "1.5m" or "1h", for every duration in the
 * config. A bare number is refused, since its unit would be a guess; 0 (or
 * "0", "0s") is accepted only where `zero` says the field can be off.
 */
export function duration(raw: unknown, field: string, { zero = false } = {}): number {
  let ms = Number.NaN;
  if (raw === 0 || raw === "0") ms = 0;
  else if (typeof raw === "string") {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(raw);
    if (match) ms = Math.round(Number(match[1]) * (unitMs[match[2] as string] as number));
  }
  if (!Number.isSafeInteger(ms) || ms > maxMs || ms < 0 || (ms === 0 && !zero)) {
    const kind = zero ? "a duration" : "a positive duration";
    throw new ConfigError(field, `must be ${kind} like 500ms, 2s or 1m, got ${JSON.stringify(raw) ?? String(raw)}`);
  }
  return ms;
}
