/**
 * The response head as the engine writes it: the member's kept fields are
 * listed with the bytes they take (readResponseFields) and written straight
 * into a buffer of that size (writeFields). The count must be exact: a head
 * longer than its count would lose its last bytes (or run into the room kept
 * for a small body), a shorter one would leave garbage in the head. Through
 * a proxy, whatever reason and field text a member sends (bytes of 0x80 and
 * up included) reaches the client byte for byte, with the body after it.
 */
import test from "ava";
import fc from "fast-check";
import { putLatin1, readResponseFields, writeFields } from "../src/proxy/headers.ts";
import { type BackendConnection, type Message, startRawProxy } from "./helpers/raw.ts";

/** Header text as llhttp hands it over: latin1, one character a byte, any byte but CR and LF (obs-text too). */
const fieldText = fc.string({
  unit: fc
    .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09))
    .map((c) => String.fromCharCode(c)),
  maxLength: 80,
  // Long text too: putLatin1 copies more than 32 characters another way.
  size: "max",
});

/** Names: mostly the member's own, some hop-by-hop or framing ones, and long ones (the native copy path). */
const fieldName = fc.oneof(
  fc.stringMatching(/^x-[a-z0-9!#$%&'*+.^_`|~-]{0,60}$/),
  fc.constantFrom(
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Upgrade",
    "Transfer-Encoding",
    "Content-Length",
    "Trailer",
    "Proxy-Authenticate",
    "Date",
  ),
);

/** The lines a client gets of a member's fields (RFC 9110 §7.6.1), written out without the engine's code. */
function expectedLines(fields: [string, string][], http10: boolean): string {
  const dropped = new Set(["connection", "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authenticate"]);
  if (http10) dropped.add("transfer-encoding");
  for (const [name, value] of fields) {
    if (name.toLowerCase() !== "connection") continue;
    for (const token of value.split(",").map((s) => s.trim().toLowerCase())) {
      // Connection may not take the framing (nor Host) away: the client would lose the message boundary.
      if (
        token !== "" &&
        !["close", "keep-alive", "upgrade", "content-length", "transfer-encoding", "host"].includes(token)
      )
        dropped.add(token);
    }
  }
  return fields
    .filter(([name]) => !dropped.has(name.toLowerCase()))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
}

test("the kept fields are written as exactly the bytes counted for them, nothing before or after", (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fieldName, fieldText), { maxLength: 12 }),
      fc.boolean(),
      fc.nat({ max: 40 }),
      (fields, http10, at) => {
        const names = fields.map(([name]) => name);
        const values = fields.map(([, value]) => value);
        const read = readResponseFields(names, values, http10);
        const expected = Buffer.from(expectedLines(fields, http10), "latin1");
        t.is(read.bytes, expected.length, "counted as many bytes as the lines take");
        // Guard bytes on both sides: a write past the count (or before `at`) shows.
        const out = Buffer.alloc(at + read.bytes + 16, 0xa5);
        const end = writeFields(out, at, names, values, read);
        t.is(end, at + read.bytes, "ends where the count says");
        t.true(out.subarray(at, end).equals(expected), "the lines, byte for byte");
        t.true(out.subarray(0, at).every((b) => b === 0xa5) && out.subarray(end).every((b) => b === 0xa5));
      },
    ),
  );
});

test("putLatin1 writes one byte a character, short and long text alike", (t) => {
  fc.assert(
    fc.property(
      fc.string({
        unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
        maxLength: 120,
        size: "max",
      }),
      (text) => {
        const out = Buffer.alloc(text.length + 4, 0xa5);
        t.is(putLatin1(out, 2, text), 2 + text.length);
        t.true(out.subarray(2, 2 + text.length).equals(Buffer.from(text, "latin1")));
        t.true(out[0] === 0xa5 && out[1] === 0xa5 && out.subarray(2 + text.length).every((b) => b === 0xa5));
      },
    ),
  );
});

function write(c: BackendConnection, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => c.socket.write(bytes, () => resolve()));
}

test("any reason and field text a member sends reaches the client byte for byte, with the body after it (sized, in one or two writes; chunked; empty)", async (t) => {
  t.timeout(120_000, "80 responses through the proxy");
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const reason = fc.string({
    unit: fc
      .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }))
      .map((c) => String.fromCharCode(c)),
    maxLength: 70,
    size: "max",
  });
  // Field values as a member may send them: no leading or trailing whitespace (llhttp drops it).
  const value = fieldText.map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ""));
  const own = fc.stringMatching(/^x-[a-z0-9!#$%&'*+.^_`|~-]{0,60}$/);
  await fc.assert(
    fc.asyncProperty(
      reason,
      fc.array(fc.tuple(own, value), { maxLength: 10 }),
      // A small sized body is waited for to go out with the head (room kept for it); the others are not.
      fc.constantFrom("length", "chunked", "empty"),
      fc.uint8Array({ minLength: 1, maxLength: 600 }),
      fc.nat({ max: 600 }),
      async (text, fields, framing, bytes, cut) => {
        const body = framing === "empty" ? Buffer.alloc(0) : Buffer.from(bytes);
        const framingLine = framing === "chunked" ? "Transfer-Encoding: chunked" : `Content-Length: ${body.length}`;
        const head = Buffer.from(
          `HTTP/1.1 200 ${text}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join("")}${framingLine}\r\n\r\n`,
          "latin1",
        );
        const at = Math.min(cut, body.length);
        const pieces = [body.subarray(0, at), body.subarray(at)].filter((p) => p.length > 0);
        const writes =
          framing === "chunked"
            ? [
                ...pieces.map((p) =>
                  Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from("\r\n")]),
                ),
                Buffer.from("0\r\n\r\n"),
              ]
            : pieces;
        h.backend("solo").script = {
          async answer(_request: Message, c: BackendConnection) {
            // The head alone, then the body: the proxy holds the head for it.
            await write(c, head);
            for (const piece of writes) await write(c, piece);
          },
        };
        const client = await h.connect();
        try {
          await client.send(Buffer.from("GET /k/a HTTP/1.1\r\nHost: x\r\n\r\n"));
          // A head written wrong leaves the client waiting: a short wait, and no shrinking, report it soon.
          const [reply] = await client.waitForResponses(1, ["GET"], 5_000);
          const got = client.responses(["GET"]);
          t.is(got.error, undefined, "strict HTTP");
          t.is(got.rest.length, 0, "nothing after the response");
          t.is(reply?.reason, text, "the reason as sent");
          const sent = fields.map(([n, v]) => `${n}: ${v}`);
          const seen: string[] = [];
          const raw = reply?.rawHeaders ?? [];
          for (let i = 0; i < raw.length; i += 2)
            if (raw[i]?.startsWith("x-") && !raw[i]?.startsWith("x-ringroute-")) seen.push(`${raw[i]}: ${raw[i + 1]}`);
          t.deepEqual(seen, sent, "the member's fields, in order, as sent");
          t.true(reply?.body.equals(body), "the body, byte for byte");
        } finally {
          client.close();
        }
      },
    ),
    { numRuns: 80, endOnFailure: true },
  );
});
