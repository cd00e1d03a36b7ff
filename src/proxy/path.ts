/**
 * The target a member receives: origin-form, dot-segments removed (RFC 3986
 * §5.2.4) before the member URL's path prefix goes in front, so `/../x`
 * cannot climb out of `http://host/api`. `%2e` counts as a dot; a segment
 * that only becomes a dot-segment once a member decodes `%2f` or `%5c`
 * (`..%2fsecret`) is refused instead, since members disagree on decoding it.
 */

import { originForm } from "./key.ts";

/** Returned for a path that is refused (400). */
export const unsafePath = Symbol("unsafe path");

/**
 * The one normalised form of a request target (origin-form, dot-segments
 * removed): the key is read from it and the member receives it, so one
 * target cannot be routed as one resource and served as another.
 */
export function normalisedTarget(target: string): string | typeof unsafePath {
  return memberTarget(originForm(target));
}

/**
 * The target on the wire to a member whose URL has the path `prefix`: `*` (OPTIONS, asterisk-form) stays
 * `*`, whatever the prefix and whichever protocol the member speaks.
 */
export function prefixed(prefix: string, target: string): string {
  return target === "*" ? target : prefix + target;
}

/**
 * `target` (origin-form or `*`) with dot-segments removed, the query kept as
 * sent; `unsafePath` when a segment hides a dot-segment behind an encoded
 * slash or backslash.
 */
export function memberTarget(target: string): string | typeof unsafePath {
  if (target === "*") return target;
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (!mayHoldDots(path)) return target;
  const query = q < 0 ? "" : target.slice(q);
  const segments = path.split("/");
  const out: string[] = [];
  // segments[0] is "" (the path starts with "/"); the rest are the path's segments.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string;
    const dots = dotSegment(segment);
    const last = i === segments.length - 1;
    if (dots === 0 && hidesDotSegment(segment)) return unsafePath;
    if (dots === 1) {
      if (last) out.push("");
    } else if (dots === 2) {
      out.pop();
      if (last) out.push("");
    } else {
      out.push(segment);
    }
  }
  return `/${out.join("/")}${query}`;
}

/** Cheap pre-check: only a path with a `.` or a `%` can hold a dot-segment. */
function mayHoldDots(path: string): boolean {
  return path.includes(".") || path.includes("%");
}

/** 1 for `.`, 2 for `..` (either spelt with `%2e`), 0 otherwise. */
function dotSegment(segment: string): 0 | 1 | 2 {
  if (segment.length === 0 || segment.length > 6) return 0;
  const s = segment.toLowerCase().replaceAll("%2e", ".");
  return s === "." ? 1 : s === ".." ? 2 : 0;
}

/** Whether decoding `%2f` or `%5c` in `segment` would leave a `.` or `..` piece between slashes. */
function hidesDotSegment(segment: string): boolean {
  const lower = segment.toLowerCase();
  if (!lower.includes("%2f") && !lower.includes("%5c") && !lower.includes("\\")) return false;
  const pieces = lower.replaceAll("%2e", ".").split(/%2f|%5c|\\/);
  return pieces.some((piece) => piece === "." || piece === "..");
}
