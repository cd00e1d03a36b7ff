/**
 * The checks every config section shares. Each throws a ConfigError naming
 * the dotted field, so whichever section a mistake is in, the user gets the
 * same one line.
 */
import { ConfigError } from "../errors/config-error.ts";

/** A value as the user wrote it, for error messages. */
export function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * A mapping; with `fields`, one holding only those (a misspelt field is an
 * error, not silently ignored).
 */
export function mapping(raw: unknown, path: string, fields?: readonly string[]): Record<string, unknown> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(path || "config", `must be a mapping, got ${show(raw)}`);
  }
  if (fields !== undefined) {
    for (const name of Object.keys(raw)) {
      if (!fields.includes(name)) {
        const expected = fields.length === 1 ? fields[0] : `one of ${fields.join(", ")}`;
        throw new ConfigError(path === "" ? name : `${path}.${name}`, `unknown field (expected ${expected})`);
      }
    }
  }
  return raw as Record<string, unknown>;
}

/**
 * A whole number in [min, max]: a number, or a string of digits as flags and
 * environment variables give them.
 */
export function integer(raw: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value =
    typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const what =
      max !== Number.MAX_SAFE_INTEGER
        ? `an integer from ${min} to ${max}`
        : min === 1
          ? "a positive integer"
          : min === 0
            ? "a non-negative integer"
            : `an integer of at least ${min}`;
    throw new ConfigError(field, `must be ${what}, got ${show(raw)}`);
  }
  return value;
}

/** A TCP address. */
export interface HostPort {
  host: string;
  /** 0 (only for listening) picks a free port. */
  port: number;
}

/**
 * `host:port` or `[v6]:port`. For listening (the default) the host may be
 * left out (`:8080`: every interface) and port 0 picks a free one; to `dial`,
 * both must be real.
 */
export function hostPort(raw: unknown, field: string, { dial = false } = {}): HostPort {
  const text = typeof raw === "number" && !dial ? `:${raw}` : raw;
  const match = typeof text === "string" ? /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim()) : null;
  const port = match ? Number(match[3]) : Number.NaN;
  const host = match ? (match[1] ?? match[2] ?? "") : "";
  if (!match || port > 65535 || (dial && (host === "" || port === 0))) {
    throw new ConfigError(field, `must be host:port like 127.0.0.1:8080 or [::1]:8080, got ${show(raw)}`);
  }
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/**
 * true or false; flags and variables give them as strings, so "true"/"1" and
 * "false"/"0" count too, in every section alike.
 */
export function boolean(raw: unknown, field: string): boolean {
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(field, `must be true or false, got ${show(raw)}`);
}

/** One of a fixed set of words. */
export function oneOf<T extends string>(raw: unknown, field: string, choices: readonly T[]): T {
  if (typeof raw !== "string" || !choices.includes(raw as T)) {
    throw new ConfigError(field, `must be one of ${choices.join(", ")}, got ${show(raw)}`);
  }
  return raw as T;
}

/** A list, or a comma-separated string of items as flags give them. */
export function list(raw: unknown, field: string): unknown[] {
  if (Array.isArray(raw)) return raw;
  if (typeof raw === "string") return raw.split(",").map((item) => item.trim());
  throw new ConfigError(field, `must be a list, got ${show(raw)}`);
}

/**
 * Member names: non-empty strings, none twice, at least one. The one place
 * duplicate names are caught, whichever way the members were given.
 */
export function memberNames(names: readonly unknown[], field: string): string[] {
  if (names.length === 0) throw new ConfigError(field, "at least one member is required");
  const seen = new Set<string>();
  for (const name of names) {
    if (typeof name !== "string" || name === "") throw new ConfigError(field, "empty member name");
    if (seen.has(name)) throw new ConfigError(field, `duplicate member "${name}"`);
    seen.add(name);
  }
  return names as string[];
}

/**
 * Tags: a mapping of names to strings. YAML reads `zone: 1` or `canary: true`
 * as a number or boolean; such scalars are kept as the text written, in every
 * source alike. Lists and mappings are errors.
 */
export function tags(raw: unknown, field: string): Record<string, string> {
  const entries = Object.entries(mapping(raw, field));
  return Object.fromEntries(
    entries.map(([key, value]) => {
      if (typeof value === "string") return [key, value];
      if (typeof value === "number" || typeof value === "boolean") return [key, String(value)];
      throw new ConfigError(`${field}.${key}`, `must be a string, got ${show(value)}`);
    }),
  );
}
