import { ConfigError } from "../errors/config-error.ts";
import { show } from "../utils/fields.ts";

/**
 * Why `value` cannot be a member's URL, or undefined if it can. One rule for
 * every source (config, members file, Serf tags, DNS records, etcd): http or
 * https, a host, a port in 1–65535 when one is written, and no credentials
 * (they would be sent to the member on every request and shown on /ring).
 */
export function memberUrlProblem(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return "must be an http(s) URL";
  // The scheme is checked on the text: URL would also take "http:host" without slashes.
  const authority = /^https?:\/\/([^/?#]*)/i.exec(value)?.[1];
  if (authority === undefined) return "must be an http(s) URL";
  // The port is checked as written: URL refuses 65536 with no reason given and takes ":" or ":0".
  const port = /:(\d*)$/.exec(authority.replace(/^.*@/, "").replace(/^\[[^\]]*\]/, ""))?.[1];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return "port must be 1-65535";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is not a valid URL";
  }
  if (url.hostname === "") return "has no host";
  if (url.username !== "" || url.password !== "") return "must not carry credentials";
  return undefined;
}

/** The URL, checked; throws ConfigError naming `field` otherwise. */
export function memberUrl(value: unknown, field: string): string {
  const problem = memberUrlProblem(value);
  if (problem !== undefined) throw new ConfigError(field, `${problem}, got ${show(value)}`);
  return value as string;
}
