import test from "ava";
import fc from "fast-check";
import { compareLexical, compareNatural, sortMembers } from "../src/ring/order.ts";

const utf8 = new TextEncoder();
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(utf8.encode(a)), Buffer.from(utf8.encode(b)));

test("lexical order is Go's sort.Strings: UTF-8 bytes, not UTF-16 code units", (t) => {
  // U+FF61 is EF BD A1 in UTF-8 and sorts before U+1F600 (F0 9F 98 80);
  // as UTF-16 (FF61 vs D83D) it would sort after.
  t.deepEqual(sortMembers(["\u{1F600}", "\uFF61"], "lexical"), ["\uFF61", "\u{1F600}"]);
  t.deepEqual(["\u{1F600}", "\uFF61"].sort(), ["\u{1F600}", "\uFF61"], "the default sort disagrees");
  t.deepEqual(sortMembers(["b", "a", "B", "ab", "a "], "lexical"), ["B", "a", "a ", "ab", "b"]);
});

test("lexical order equals UTF-8 byte order for any well-formed strings", (t) => {
  const name = fc.string({ unit: "grapheme", maxLength: 12 });
  fc.assert(fc.property(name, name, (a, b) => Math.sign(compareLexical(a, b)) === Math.sign(byteOrder(a, b))));
  t.pass();
});

test("natural order compares digit runs as numbers", (t) => {
  t.deepEqual(sortMembers(["web-10", "web-2", "web-1", "web-0", "web-11"], "natural"), [
    "web-0",
    "web-1",
    "web-2",
    "web-10",
    "web-11",
  ]);
  t.deepEqual(sortMembers(["web-10", "web-2", "web-1"], "lexical"), ["web-1", "web-10", "web-2"]);
  t.deepEqual(sortMembers(["b2-x", "a10", "a9", "a9b", "a"], "natural"), ["a", "a9", "a9b", "a10", "b2-x"]);
  t.deepEqual(sortMembers(["10.0.0.10:80", "10.0.0.9:80", "10.0.0.9:8080"], "natural"), [
    "10.0.0.9:80",
    "10.0.0.9:8080",
    "10.0.0.10:80",
  ]);
});

test("natural order is total: zero padding and leading numbers still sort consistently", (t) => {
  t.not(compareNatural("web-01", "web-1"), 0);
  t.deepEqual(
    sortMembers(["web-1", "web-01", "web-001"], "natural"),
    sortMembers(["web-001", "web-1", "web-01"], "natural"),
  );
  const name = fc.stringMatching(/^[a-c0-9-]{0,8}$/);
  fc.assert(
    fc.property(name, name, name, (a, b, c) => {
      const ab = Math.sign(compareNatural(a, b));
      if (ab !== -Math.sign(compareNatural(b, a))) return false;
      if (ab === 0) return a === b;
      // transitivity
      if (compareNatural(a, b) < 0 && compareNatural(b, c) < 0) return compareNatural(a, c) < 0;
      return true;
    }),
  );
  t.pass();
});
