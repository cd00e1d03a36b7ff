/**
 * How a Serf member's tags are checked against the watched tags.
 *
 * - `all` (ringroute's default): every watched tag must match; a missing tag
 *   is matched as "" (so `^$` admits members without it).
 * - `any` (libring's `hasWatchedTag`): one matching watched tag admits the
 *   member, and a missing tag never matches. For `{ring: /active/, zone:
 *   /^eu$/}` that admits a member with only `ring=active` and one with only
 *   `zone=eu`, where `all` admits only the member with both.
 *
 * With no watched tags every member is admitted, under either rule.
 */
export type TagMatch = "all" | "any";

export const tagMatches: readonly TagMatch[] = ["all", "any"];

export function tagsMatch(
  filters: readonly (readonly [string, RegExp])[],
  tags: Readonly<Record<string, string>>,
  rule: TagMatch,
): boolean {
  if (filters.length === 0) return true;
  if (rule === "all") return filters.every(([tag, re]) => re.test(tags[tag] ?? ""));
  return filters.some(([tag, re]) => Object.hasOwn(tags, tag) && re.test(tags[tag] as string));
}
