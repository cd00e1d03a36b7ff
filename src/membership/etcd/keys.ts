/**
 * The key layout under a cluster's prefix: the contract other programs
 * (sidecars, members written in other languages, outside checks) rely on.
 *
 *   members/<name>   {"url", "tags", "ready"}          under the member's lease
 *   election/<name>  <name>                            under the member's lease; lowest create revision leads
 *   versions/<n>     {"version", "members", "previous", "ring", "checksum"}   written by the leader
 *   handoff/<name>   {"version", "ready", "released"}  under the member's lease; per rank, partition lists
 *   ready/<name>     n                                 under the member's lease: its hand-offs for n are done
 *   stable           n                                 written by the leader once every member of n reports n
 */
export const sections = ["members", "election", "versions", "handoff", "ready"] as const;
export type Section = (typeof sections)[number];

export function keyOf(prefix: string, section: Section, name: string | number): string {
  return `${prefix}${section}/${name}`;
}

export function stableKey(prefix: string): string {
  return `${prefix}stable`;
}

/** Splits a key under `prefix` into its section and name; undefined for keys outside the layout. */
export function parseKey(prefix: string, key: string): { section: Section | "stable"; name: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  if (rest === "stable") return { section: "stable", name: "" };
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const section = rest.slice(0, slash) as Section;
  const name = rest.slice(slash + 1);
  if (!sections.includes(section) || name === "" || name.includes("/")) return undefined;
  return { section, name };
}
