/**
 * One access-log line, written by hand: the record's fields are fixed, so a
 * template with a cheap escape check per string does what `JSON.stringify`
 * of `{ time, ...record }` did for a fraction of the cost (no intermediate
 * object, no generic key walk), and gives the same text. The time string is
 * made once per millisecond, not once per record.
 */
import type { AccessRecord } from "../proxy/observer.ts";

/** `value` as a JSON string: JSON.stringify's own text whenever it would escape anything. */
function str(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Quote, backslash, control characters and surrogates (a lone one gets a \u escape).
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/** Milliseconds to two decimals, as the README's lines show them; JSON has no NaN or Infinity. */
function ms(value: number): string {
  return Number.isFinite(value) ? String(Math.round(value * 100) / 100) : "null";
}

let cachedAt = -1;
let cachedTime = "";

/** `new Date(now).toISOString()`, made again only when the millisecond changes. */
export function isoTime(now: number): string {
  if (now !== cachedAt) {
    cachedAt = now;
    cachedTime = new Date(now).toISOString();
  }
  return cachedTime;
}

// Every field of AccessRecord is written below: a field added to it and not here fails to compile.
type Written =
  | "method"
  | "path"
  | "status"
  | "partition"
  | "member"
  | "tried"
  | "bytesIn"
  | "bytesOut"
  | "totalMs"
  | "upstreamMs"
  | "client"
  | "reason"
  | "outcome"
  | "truncated"
  | "protocol";
const everyField: [Exclude<keyof AccessRecord, Written>] extends [never] ? true : never = true;
void everyField;

/** The JSON line (newline included) for `record` at clock time `now` (ms since the epoch). */
export function accessLine(record: AccessRecord, now: number): string {
  const reason = record.reason === undefined ? "" : `,"reason":${str(record.reason)}`;
  const outcome = record.outcome === undefined ? "" : `,"outcome":${str(record.outcome)}`;
  const truncated = record.truncated === undefined ? "" : `,"truncated":${record.truncated}`;
  const protocol = record.protocol === undefined ? "" : `,"protocol":${str(record.protocol)}`;
  return (
    `{"time":"${isoTime(now)}","method":${str(record.method)},"path":${str(record.path)},` +
    `"status":${record.status},"partition":${record.partition},"member":${str(record.member)},` +
    `"tried":${record.tried},"bytesIn":${record.bytesIn},"bytesOut":${record.bytesOut},` +
    `"totalMs":${ms(record.totalMs)},"upstreamMs":${ms(record.upstreamMs)},"client":${str(record.client)}${reason}${outcome}${truncated}${protocol}}\n`
  );
}

/**
 * The same line as `accessLine`, written as UTF-8 straight into `out` at
 * `at`; returns where it ends. No string is made for the line, its numbers or
 * its punctuation: only a field that needs escaping goes through
 * `JSON.stringify`. The caller makes sure `out` has `accessLineBound(record)`
 * bytes free. `serve` logs through this one (about 1 KB of garbage a request
 * less than building the line as a string and concatenating it into a batch).
 * Every field `accessLine` writes is written here too: the property test in
 * test/access-line.test.ts compares the two.
 */
export function writeAccessLine(record: AccessRecord, now: number, buffer: Buffer, at: number): number {
  const out = buffer as Out;
  let p = ascii(out, at, '{"time":"');
  p = ascii(out, p, isoTime(now));
  p = ascii(out, p, '","method":');
  p = text(out, p, record.method);
  p = ascii(out, p, ',"path":');
  p = text(out, p, record.path);
  p = ascii(out, p, ',"status":');
  p = integer(out, p, record.status);
  p = ascii(out, p, ',"partition":');
  p = integer(out, p, record.partition);
  p = ascii(out, p, ',"member":');
  p = text(out, p, record.member);
  p = ascii(out, p, ',"tried":');
  p = integer(out, p, record.tried);
  p = ascii(out, p, ',"bytesIn":');
  p = integer(out, p, record.bytesIn);
  p = ascii(out, p, ',"bytesOut":');
  p = integer(out, p, record.bytesOut);
  p = ascii(out, p, ',"totalMs":');
  p = hundredths(out, p, record.totalMs);
  p = ascii(out, p, ',"upstreamMs":');
  p = hundredths(out, p, record.upstreamMs);
  p = ascii(out, p, ',"client":');
  p = text(out, p, record.client);
  if (record.reason !== undefined) {
    p = ascii(out, p, ',"reason":');
    p = text(out, p, record.reason);
  }
  if (record.outcome !== undefined) {
    p = ascii(out, p, ',"outcome":');
    p = text(out, p, record.outcome);
  }
  if (record.truncated !== undefined) p = ascii(out, p, record.truncated ? ',"truncated":true' : ',"truncated":false');
  if (record.protocol !== undefined) {
    p = ascii(out, p, ',"protocol":');
    p = text(out, p, record.protocol);
  }
  out[p++] = 0x7d; // }
  out[p++] = 0x0a; // \n
  return p;
}

/** Bytes `writeAccessLine` may need for `record`: a UTF-8 character is at most 3 bytes a UTF-16 unit, an escape 6. */
export function accessLineBound(record: AccessRecord): number {
  const strings =
    record.method.length +
    record.path.length +
    record.member.length +
    record.client.length +
    (record.reason?.length ?? 0) +
    (record.outcome?.length ?? 0) +
    (record.protocol?.length ?? 0);
  // Punctuation, names, time and numbers take under 400 bytes.
  return 400 + 6 * strings;
}

/**
 * Buffer's own encoders: what `write(text, at, encoding)` calls, minus its argument checks and encoding
 * lookup. Offsets are always in range here (`accessLineBound`).
 */
type Out = Buffer & {
  latin1Write(text: string, at: number): number;
  utf8Write(text: string, at: number): number;
};

/**
 * Writes an ASCII piece (the field names and punctuation, the time) byte by byte: for pieces this short a
 * plain loop costs less than a call into Buffer's native encoders.
 */
function ascii(out: Out, at: number, piece: string): number {
  for (let i = 0; i < piece.length; i++) out[at + i] = piece.charCodeAt(i);
  return at + piece.length;
}

/**
 * A JSON string: the characters between quotes, or JSON.stringify's text when anything needs escaping.
 * ASCII (nearly every method, path, member and address) is copied in the same loop that checks it; other
 * characters go through the UTF-8 encoder.
 */
function text(out: Out, at: number, value: string): number {
  out[at] = 0x22;
  const start = at + 1;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff))
      return at + out.utf8Write(JSON.stringify(value), at);
    if (c >= 0x80) return unicode(out, at, value, i);
    out[start + i] = c;
  }
  const end = start + value.length;
  out[end] = 0x22;
  return end + 1;
}

/** The rest of `text` for a string with a non-ASCII character at `from`: still checked for escapes first. */
function unicode(out: Out, at: number, value: string, from: number): number {
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff))
      return at + out.utf8Write(JSON.stringify(value), at);
  }
  const p = at + 1 + out.utf8Write(value, at + 1);
  out[p] = 0x22;
  return p + 1;
}

/** The decimal digits of a safe integer (what `String(n)` gives), with no string made. */
function integer(out: Out, at: number, n: number): number {
  if (!Number.isSafeInteger(n)) return at + out.latin1Write(String(n), at);
  let p = at;
  if (n < 0) {
    out[p++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let d = n; d >= 10; d = Math.floor(d / 10)) digits++;
  for (let i = p + digits - 1; i >= p; i--) {
    out[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return p + digits;
}

/**
 * Milliseconds to two decimals: the text `ms` gives (`String(Math.round(v * 100) / 100)`: `1.5`, `0.07`,
 * `12`), written from the integer number of hundredths. Below 2^53 / 100 the shortest text of k / 100 is
 * k / 100 in decimal, trailing zeros dropped, which is what is written; anything else goes through `ms`.
 */
function hundredths(out: Out, at: number, value: number): number {
  const k = Math.round(value * 100);
  if (!Number.isFinite(value) || Math.abs(k) >= 1e15) return at + out.latin1Write(ms(value), at);
  let p = at;
  let abs = k;
  if (k < 0) {
    out[p++] = 0x2d;
    abs = -k;
  }
  const whole = Math.floor(abs / 100);
  const fraction = abs - whole * 100;
  p = integer(out, p, whole);
  if (fraction !== 0) {
    out[p++] = 0x2e;
    out[p++] = 0x30 + Math.floor(fraction / 10);
    if (fraction % 10 !== 0) out[p++] = 0x30 + (fraction % 10);
  }
  return p;
}
