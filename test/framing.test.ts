/**
 * Response framing as a specification: which mode each (member framing,
 * client version) pair gets, and that each mode's bytes read back, through
 * an independent llhttp (Node's own binding), as the body the member sent,
 * however the bytes were split across reads.
 */
import test from "ava";
import fc from "fast-check";
import {
  type BodyMode,
  chunkPrefix,
  chunkSuffix,
  type FramingInput,
  framedLines,
  lastChunk,
  responseFraming,
} from "../src/proxy/framing.ts";
import { OK, PAUSED, Parser } from "../src/proxy/llhttp.ts";
import { header, parse } from "./helpers/raw.ts";

type Member = "length" | "chunked" | "eof";

/** [member framing, HTTP/1.0 client, Upgrade refused] → [body mode, client closed after]. */
const table: [Member, boolean, boolean, BodyMode, boolean][] = [
  ["length", false, false, "verbatim", false],
  ["chunked", false, false, "verbatim", false],
  ["eof", false, false, "rechunk", false],
  ["length", true, false, "verbatim", true],
  ["chunked", true, false, "dechunk", true],
  ["eof", true, false, "verbatim", true],
  ["length", false, true, "verbatim", true],
  ["chunked", false, true, "verbatim", true],
  ["eof", false, true, "verbatim", true],
  ["chunked", true, true, "dechunk", true],
];

for (const [member, http10, upgrade, body, close] of table) {
  test(`member ${member}, ${http10 ? "HTTP/1.0" : "HTTP/1.1"} client${upgrade ? ", Upgrade refused" : ""}: ${body}${close ? ", then close" : ""}`, (t) => {
    const input: FramingInput = { needsEof: member === "eof", chunked: member === "chunked", http10, upgrade };
    t.deepEqual(responseFraming(input), { body, close });
  });
}

test("framedLines: rechunk adds Transfer-Encoding, dechunk drops it, verbatim keeps the member's lines", (t) => {
  const lines = "content-type: text/plain\r\nTransfer-Encoding: chunked\r\nx-a: 1\r\n";
  t.is(framedLines("verbatim", lines), lines);
  t.is(framedLines("dechunk", lines), "content-type: text/plain\r\nx-a: 1\r\n");
  t.is(framedLines("rechunk", "x-a: 1\r\n"), "x-a: 1\r\ntransfer-encoding: chunked\r\n");
});

const bodyPieces = fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 12 });

test("rechunk: any sequence of spans, framed, reads back as the same body", (t) => {
  fc.assert(
    fc.property(bodyPieces, (pieces) => {
      const parts = [Buffer.from(`HTTP/1.1 200 OK\r\n${framedLines("rechunk", "")}\r\n`, "latin1")];
      for (const piece of pieces) {
        parts.push(Buffer.from(chunkPrefix(piece.length), "latin1"), Buffer.from(piece), Buffer.from(chunkSuffix));
      }
      parts.push(Buffer.from(lastChunk, "latin1"));
      const { messages, error, rest } = parse("response", Buffer.concat(parts));
      const [message] = messages;
      return (
        error === undefined &&
        rest.length === 0 &&
        messages.length === 1 &&
        message?.complete === true &&
        header(message, "transfer-encoding") === "chunked" &&
        message.body.equals(Buffer.concat(pieces.map((p) => Buffer.from(p))))
      );
    }),
  );
  t.pass();
});

test("dechunk: the parser's decoded spans, taken after each execute(), are the body, however the reads split it", (t) => {
  fc.assert(
    fc.property(bodyPieces, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (pieces, cuts, extensions) => {
      const chunked = Buffer.concat([
        Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "latin1"),
        ...pieces.flatMap((p) => [
          Buffer.from(`${p.length.toString(16)}${extensions ? ";ext=1" : ""}\r\n`, "latin1"),
          Buffer.from(p),
          Buffer.from("\r\n"),
        ]),
        Buffer.from("0\r\nx-trailer: 1\r\n\r\n", "latin1"),
      ]);
      const at = [...new Set(cuts.map((c) => c % chunked.length))].sort((a, b) => a - b);
      const reads = [0, ...at, chunked.length].flatMap((from, i, all) =>
        i + 1 < all.length && (all[i + 1] as number) > from ? [chunked.subarray(from, all[i + 1])] : [],
      );
      const parser = new Parser("response");
      const decoded: Buffer[] = [];
      let done = false;
      try {
        for (const read of reads) {
          let start = 0;
          for (;;) {
            const code = parser.execute(read, start);
            if (code !== OK && code !== PAUSED) return false;
            if (parser.headReady) {
              parser.headReady = false;
              parser.decode = true;
            }
            for (let i = 0; i < parser.spans.length; i += 2) {
              decoded.push(Buffer.from(read.subarray(parser.spans[i], parser.spans[i + 1])));
            }
            parser.spans.length = 0;
            if (parser.done) done = true;
            if (code === OK) break;
            start = parser.pos;
          }
        }
      } finally {
        parser.free();
      }
      return done && Buffer.concat(decoded).equals(Buffer.concat(pieces.map((p) => Buffer.from(p))));
    }),
  );
  t.pass();
});
