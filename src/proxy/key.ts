/**
 * Where a request's key comes from. Every extractor returns the key as the
 * string `Ring.partitionOf` hashes (its UTF-8 bytes, as Go would hash them),
 * `undefined` when the request has no key, or throws KeyError when the key
 * is there but unusable.
 */
import type { KeyConfig } from "../config.ts";
import { KeyError } from "../errors/key-error.ts";

/** What a key is read from: the request target and the header names and values (latin1, as received). */
export interface KeyRequest {
  /** The target normalised as the member receives it (`normalisedTarget`): dot-segments removed, query as sent. */
  url: string;
  names: readonly string[];
  values: readonly string[];
}

export type KeyExtractor = (req: KeyRequest) => string | undefined;

export interface CompiledKey {
  extract: KeyExtractor;
  /** Where the key is looked for, for error bodies: `the URL path`, `header "x-user"`. */
  source: string;
}

/** Builds the extractor `key.from` describes (already validated by the config). */
export function compileKey(config: KeyConfig): CompiledKey {
  const { from, maxLength } = config;
  switch (from.kind) {
    case "path": {
      const source = "the URL path";
      return {
        source,
        extract: (req) => checked(requestPath(req.url, source), maxLength, 414, source),
      };
    }
    case "header": {
      const name = from.name;
      const source = `header ${JSON.stringify(name)}`;
      return { source, extract: (req) => checked(headerValue(req.names, req.values, name), maxLength, 431, source) };
    }
    case "cookie": {
      const arg = from.name;
      const source = `cookie ${JSON.stringify(arg)}`;
      return { source, extract: (req) => checked(cookieValue(req.names, req.values, arg), maxLength, 431, source) };
    }
    case "query": {
      const arg = from.name;
      const source = `query parameter ${JSON.stringify(arg)}`;
      return { source, extract: (req) => checked(queryValue(req.url, arg), maxLength, 414, source) };
    }
    case "regex": {
      const arg = from.pattern;
      const pattern = new RegExp(arg);
      const source = `the URL path matching /${arg}/`;
      return {
        source,
        extract: (req) => {
          const path = requestPath(req.url, source);
          const match = pattern.exec(path);
          const key = match?.[1];
          return checked(key === "" ? undefined : key, maxLength, 414, source);
        },
      };
    }
  }
}

function checked(key: string | undefined, maxLength: number, status: 414 | 431, source: string): string | undefined {
  if (key !== undefined && key.length > maxLength) {
    throw new KeyError(status, "key_too_long", `the key in ${source} is longer than ${maxLength} characters`, source);
  }
  return key;
}

/** Strips scheme and authority from an absolute-form target; they never choose the upstream. */
export function originForm(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const match = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  if (match === null) return url;
  const rest = url.slice(match[0].length);
  return rest === "" || rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
}

/**
 * The request path as Go's `r.URL.Path` has it: no query, percent-escapes
 * decoded. Escapes that are malformed or do not decode to UTF-8 get 400: Go's
 * server refuses the first, and the second has no string a JS hash could
 * agree with Go on.
 */
export function requestPath(url: string, source = "the URL path"): string {
  const target = originForm(url);
  let end = target.length;
  let escaped = false;
  let wide = false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 63 /* ? */) {
      end = i;
      break;
    }
    if (c === 37 /* % */) escaped = true;
    else if (c > 0x7f) wide = true;
  }
  let path = end === target.length ? target : target.slice(0, end);
  // Node hands over raw bytes in the target as latin1 characters; read them as UTF-8, like Go's bytes.
  if (wide) path = Buffer.from(path, "latin1").toString("utf8");
  if (!escaped) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    throw new KeyError(400, "malformed_key", `the URL path has malformed percent-encoding`, source);
  }
}

/** The first value of header `name` (lower case), like Go's `Header.Get`, read as UTF-8. */
export function headerValue(names: readonly string[], values: readonly string[], name: string): string | undefined {
  for (let i = 0; i < names.length; i++) {
    const header = names[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) {
      const value = utf8(values[i] as string);
      return value === "" ? undefined : value;
    }
  }
  return undefined;
}

/** The first cookie called `name`, quotes removed, like Go's `Request.Cookie`. */
export function cookieValue(names: readonly string[], values: readonly string[], name: string): string | undefined {
  for (let i = 0; i < names.length; i++) {
    const header = names[i] as string;
    if (header.length !== 6 || header.toLowerCase() !== "cookie") continue;
    for (const pair of (values[i] as string).split(";")) {
      const eq = pair.indexOf("=");
      if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value === "" ? undefined : utf8(value);
    }
  }
  return undefined;
}

/** The first value of query parameter `name`, decoded like Go's `URL.Query().Get`. */
export function queryValue(url: string, name: string): string | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  const value = new URLSearchParams(utf8(url.slice(q + 1))).get(name);
  return value === null || value === "" ? undefined : value;
}

/** Node gives header values as latin1 strings; re-read non-ASCII ones as the UTF-8 bytes they were. */
function utf8(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, "latin1").toString("utf8");
  }
  return value;
}
