/**
 * The access log's hand-written serialiser gives exactly the text
 * `JSON.stringify({ time, ...record })` gave (the model), times rounded to two
 * decimals as the README shows, for any strings a client or member can put
 * in a record: quotes, backslashes, control characters, raw latin1 bytes,
 * lone surrogates. Lines reach the stream in batches, in order, none lost.
 */
import test from "ava";
import fc from "fast-check";
import { accessLine, accessLineBound, isoTime, writeAccessLine } from "../src/commands/access-line.ts";
import { byteAccessLog, createAccessLog } from "../src/commands/logging.ts";
import type { AccessRecord } from "../src/proxy/observer.ts";

/** The previous serialiser, with the two times rounded. */
function model(record: AccessRecord, now: number): string {
  const round = (ms: number) => Math.round(ms * 100) / 100;
  const json = { time: new Date(now).toISOString(), ...record };
  json.totalMs = round(record.totalMs);
  json.upstreamMs = round(record.upstreamMs);
  return `${JSON.stringify(json)}\n`;
}

/** Any UTF-16 code unit, lone surrogates included. */
const anyText = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
const hostile = fc.oneof(
  anyText,
  fc.constantFrom(
    '"',
    "\\",
    '\\"',
    "\u0000",
    "\n\r\t",
    "\u007f",
    "\u2028\u2029",
    "é\u00ff",
    "\ud800",
    "😀",
    "</script>",
  ),
);

const records = fc.record(
  {
    method: fc.oneof(fc.constantFrom("GET", "POST", "M-SEARCH"), hostile),
    path: hostile,
    status: fc.integer({ min: 0, max: 599 }),
    partition: fc.integer({ min: -1, max: 65_535 }),
    member: hostile,
    tried: fc.nat(10),
    bytesIn: fc.nat(),
    bytesOut: fc.nat(),
    totalMs: fc.double({ min: 0, max: 1e7, noNaN: true }),
    upstreamMs: fc.double({ min: 0, max: 1e7, noNaN: true }),
    client: hostile,
    reason: hostile,
    outcome: fc.oneof(fc.constantFrom("ok", "slow_reader", "upstream_timeout"), hostile),
    truncated: fc.constant(true),
    protocol: fc.constantFrom("http/1.1" as const, "h2" as const),
  },
  {
    requiredKeys: [
      "method",
      "path",
      "status",
      "partition",
      "member",
      "tried",
      "bytesIn",
      "bytesOut",
      "totalMs",
      "upstreamMs",
      "client",
    ],
  },
);

test("a line is the text JSON.stringify gave, for any strings, and parses back to the record", (t) => {
  fc.assert(
    fc.property(records, fc.integer({ min: 0, max: 4_102_444_800_000 }), (record, now) => {
      const line = accessLine(record, now);
      t.is(line, model(record, now));
      const parsed = JSON.parse(line);
      // Every string comes back whole; a lone surrogate is written as a \\u escape that parses back to it.
      for (const field of ["method", "path", "member", "client"] as const) t.is(parsed[field], record[field]);
      t.deepEqual(Object.keys(parsed), ["time", ...Object.keys(record)]);
    }),
    { numRuns: 2000 },
  );
});

test("the line written as bytes is the text line in UTF-8, within the bound it promises", (t) => {
  fc.assert(
    fc.property(records, fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.nat(64), (record, now, at) => {
      const bound = accessLineBound(record);
      // Bytes around the line show it writes nowhere else.
      const out = Buffer.alloc(at + bound + 8, 0xee);
      const end = writeAccessLine(record, now, out, at);
      const expected = Buffer.from(accessLine(record, now), "utf8");
      t.true(end - at <= bound, "the line fits the bound");
      t.deepEqual(out.subarray(at, end), expected);
      t.true(out.subarray(0, at).every((b) => b === 0xee) && out.subarray(end).every((b) => b === 0xee));
    }),
    { numRuns: 2000 },
  );
  // Durations at the edges of the two-decimal text.
  for (const ms of [0, -0, 0.004, 0.005, 0.07, 0.1, 1.5, 2, 10.1, 99.99, 100, 14.288037000000259, 1e7, 1e13]) {
    const record: AccessRecord = {
      method: "GET",
      path: "/",
      status: 200,
      partition: -1,
      member: "none",
      tried: 0,
      bytesIn: 0,
      bytesOut: 0,
      totalMs: ms,
      upstreamMs: Number.NaN,
      client: "",
    };
    const out = Buffer.alloc(accessLineBound(record));
    t.is(out.toString("utf8", 0, writeAccessLine(record, 0, out, 0)), accessLine(record, 0), `totalMs ${ms}`);
  }
});

test("byte lines reach the sink in order as slices never written over, batched by size and at the end of the turn", async (t) => {
  const handed: Buffer[] = [];
  const copies: string[] = [];
  const sink = {
    write: (bytes: Buffer) => {
      handed.push(bytes);
      copies.push(bytes.toString("utf8"));
    },
  };
  const log = byteAccessLog(1, sink, Math.random, 1000);
  const record = (i: number): AccessRecord => ({
    method: "GET",
    // Long enough that the 64 KB line buffer fills and is replaced along the way.
    path: `/users/${i}/${"x".repeat(300)}`,
    status: 200,
    partition: i,
    member: "a",
    tried: 1,
    bytesIn: 0,
    bytesOut: 1,
    totalMs: 1,
    upstreamMs: 1,
    client: "127.0.0.1",
  });
  for (let i = 0; i < 500; i++) log.write(record(i));
  const batches = handed.length;
  t.true(batches >= 100, `batches of about 1000 bytes were handed over at once (${batches})`);
  await new Promise((resolve) => setImmediate(resolve));
  t.is(handed.length, batches + 1, "the rest at the end of the turn");
  log.write(record(500));
  log.close();
  t.deepEqual(
    handed.map((b) => b.toString("utf8")),
    copies,
    "no slice handed over was written over afterwards",
  );
  const lines = copies.join("").split("\n");
  t.is(lines.pop(), "");
  t.deepEqual(
    lines.map((l) => JSON.parse(l).partition),
    Array.from({ length: 501 }, (_, i) => i),
  );
});

test("hostile strings are escaped: one line, valid JSON, the same strings back", (t) => {
  const record: AccessRecord = {
    method: "GET",
    path: '/a"b\\c\nd\u0000e\u00e9\u2028',
    status: 200,
    partition: 3,
    member: 'web-"1"',
    tried: 1,
    bytesIn: 0,
    bytesOut: 5,
    totalMs: 1.23456,
    upstreamMs: 0.987654,
    client: "::ffff:127.0.0.1",
    reason: "client_closed",
  };
  const line = accessLine(record, Date.UTC(2026, 11, 1, 14, 45, 13, 624));
  t.is(line.indexOf("\n"), line.length - 1, "no raw newline inside the line");
  t.deepEqual(JSON.parse(line), {
    time: "2026-12-01T14:45:13.624Z",
    ...record,
    totalMs: 1.23,
    upstreamMs: 0.99,
  });
});

test("the time string is made once per millisecond", (t) => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
  const first = isoTime(at);
  t.is(first, "2026-01-02T03:04:05.006Z");
  t.is(isoTime(at), first);
  t.is(isoTime(at + 1), "2026-01-02T03:04:05.007Z");
  t.is(isoTime(at), first);
});

test("lines reach the stream in order, batched by size and at the end of the turn; close hands over the rest", async (t) => {
  const kept: string[] = [];
  const out = { write: (text: string) => void kept.push(text) };
  const log = createAccessLog({ log: true, sample: 1 }, out, Math.random, 1000, 1000);
  const record = (i: number): AccessRecord => ({
    method: "GET",
    path: `/users/${i}`,
    status: 200,
    partition: i,
    member: "a",
    tried: 1,
    bytesIn: 0,
    bytesOut: 1,
    totalMs: 1,
    upstreamMs: 1,
    client: "127.0.0.1",
  });
  for (let i = 0; i < 50; i++) log?.write(record(i));
  const handed = kept.length;
  t.true(handed >= 3, `batches of about 1000 characters were handed over at once (${handed})`);
  await new Promise((resolve) => setImmediate(resolve));
  t.is(kept.length, handed + 1, "the rest at the end of the turn");
  log?.write(record(50));
  log?.close();
  const lines = kept.join("").split("\n");
  t.is(lines.pop(), "");
  t.deepEqual(
    lines.map((l) => JSON.parse(l).path),
    Array.from({ length: 51 }, (_, i) => `/users/${i}`),
  );
});
