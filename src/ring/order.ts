/**
 * Member orders. Jump hash indexes into a sorted member list, so the order
 * decides which partitions move when a member joins: jump moves only the
 * optimal 1/(n+1) when the newcomer sorts last, and about half of all
 * partitions when it lands in the middle.
 */

export type MemberOrder = "lexical" | "natural";

export const memberOrders: readonly MemberOrder[] = ["lexical", "natural"];

/**
 * Byte-wise order of the UTF-8 encodings, which is what Go's sort.Strings
 * does and libring uses. UTF-8 preserves code point order, so comparing code
 * points is enough; JavaScript's default sort compares UTF-16 code units and
 * puts U+FF61 after U+1F600, the opposite of Go.
 */
export function compareLexical(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++; // both were surrogate pairs
  }
  return a.length - b.length;
}

const digitRun = /(\d+)/;

/**
 * Numeric-aware order: runs of ASCII digits compare as numbers, so web-2
 * sorts before web-10 and a StatefulSet that scales at its end appends to
 * the list. Equal numbers with different zero padding (web-01, web-1), and
 * everything else, fall back to the lexical order, which keeps it total.
 */
export function compareNatural(a: string, b: string): number {
  const left = a.split(digitRun);
  const right = b.split(digitRun);
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const x = left[i] as string;
    const y = right[i] as string;
    if (x === y) continue;
    // split() with a capture group puts digit runs at odd indexes.
    if (i % 2 === 1) {
      const byValue = compareDigits(x, y);
      if (byValue !== 0) return byValue;
    } else {
      return compareLexical(x, y);
    }
  }
  return left.length !== right.length ? left.length - right.length : compareLexical(a, b);
}

function compareDigits(x: string, y: string): number {
  const a = x.replace(/^0+/, "");
  const b = y.replace(/^0+/, "");
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortMembers(members: Iterable<string>, order: MemberOrder): string[] {
  return [...members].sort(order === "natural" ? compareNatural : compareLexical);
}
