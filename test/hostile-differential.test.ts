/**
 * Differential test: random valid requests sent through ringroute to a
 * recording backend arrive semantically identical, and the backend's random
 * responses reach the client identical, apart from these documented
 * rewrites (and nothing else):
 *
 * - Hop-by-hop fields are removed in both directions: Connection, Keep-Alive,
 *   Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and any field
 *   named in Connection. Each hop has its own Connection handling, so
 *   Connection and Keep-Alive are not compared.
 * - Framing is canonical and may change: a body arrives byte-identical, with
 *   exactly one of Content-Length (equal to its length) or
 *   `Transfer-Encoding: chunked`; chunked may become Content-Length or the
 *   reverse, and a close-delimited response may be re-framed.
 * - Requests gain X-Forwarded-For (client address appended), X-Forwarded-Proto
 *   and X-Forwarded-Host; a client's own X-Forwarded-* are replaced.
 * - Host and every other field keep their values and relative order; field
 *   names compare case-insensitively.
 * - Responses keep status, reason phrase and fields in order (the backend
 *   always sends Date, so no hop adds one).
 *
 * Random malformed requests get a 4xx and reach no backend.
 */
import test from "ava";
import fc from "fast-check";
import { fixed, headerValues, type Message, type RawHarness, type Script, startRawProxy } from "./helpers/raw.ts";

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);
const forwarded = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);

/** The end-to-end fields of a message: [lower-case name, value] in order, without hop-by-hop and framing fields. */
function endToEnd(rawHeaders: string[], drop: ReadonlySet<string> = new Set()): [string, string][] {
  const listed = new Set(
    headerValues({ rawHeaders }, "connection").flatMap((v) => v.split(",").map((s) => s.trim().toLowerCase())),
  );
  const out: [string, string][] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (hopByHop.has(name) || listed.has(name) || drop.has(name)) continue;
    out.push([name, rawHeaders[i + 1] as string]);
  }
  return out;
}

/** Checks a message's framing is canonical for its body. */
function framingOk(message: Message, bodyAllowed: boolean): string | undefined {
  const lengths = headerValues(message, "content-length");
  const codings = headerValues(message, "transfer-encoding");
  if (lengths.length > 1) return `Content-Length ${lengths.length} times`;
  if (lengths.length === 1 && codings.length > 0) return "both Content-Length and Transfer-Encoding";
  if (codings.length > 1 || (codings.length === 1 && codings[0]?.toLowerCase() !== "chunked")) {
    return `Transfer-Encoding ${codings.join(", ")}`;
  }
  if (bodyAllowed && lengths.length === 1 && Number(lengths[0]) !== message.body.length) {
    return `Content-Length ${lengths[0]} for ${message.body.length} bytes`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// What to send

const token = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const fieldValue = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);
const fields = (prefix: string) =>
  fc.array(
    fc.tuple(
      token.map((n) => `${prefix}${n}`),
      fieldValue,
    ),
    { maxLength: 8 },
  );
const bytes = fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a));

interface RequestSpec {
  method: string;
  target: string;
  fields: [string, string][];
  body: { framing: "none" } | { framing: "length"; data: Buffer } | { framing: "chunked"; chunks: Buffer[] };
  response: ResponseSpec;
}

interface ResponseSpec {
  status: number;
  reason: string;
  fields: [string, string][];
  framing: "length" | "chunked" | "close";
  data: Buffer;
}

const responseSpec: fc.Arbitrary<ResponseSpec> = fc.record({
  status: fc.constantFrom(200, 201, 202, 204, 301, 400, 404, 410, 500),
  reason: fc.constantFrom("OK", "Fine", "Whatever Works", "Not Here"),
  fields: fields("x-r-"),
  framing: fc.constantFrom("length", "chunked", "close"),
  data: bytes,
});

const requestSpec: fc.Arbitrary<RequestSpec> = fc
  .record({
    method: fc.constantFrom("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
    path: fc.array(fc.stringMatching(/^[A-Za-z0-9_~-]{1,10}$/), { minLength: 1, maxLength: 4 }),
    query: fc.option(fc.stringMatching(/^[a-z0-9=&%]{0,20}$/), { nil: undefined }),
    fields: fields("x-t-"),
    framing: fc.constantFrom("none", "length", "chunked"),
    data: bytes,
    splits: fc.array(fc.nat({ max: 3000 }), { maxLength: 4 }),
    response: responseSpec,
  })
  .map((r) => {
    const target = `/${r.path.join("/")}${r.query === undefined ? "" : `?${r.query}`}`;
    const bodyless = r.method === "GET" || r.method === "HEAD" || r.method === "OPTIONS";
    let body: RequestSpec["body"] = { framing: "none" };
    if (!bodyless && r.framing === "length") body = { framing: "length", data: r.data };
    if (!bodyless && r.framing === "chunked") {
      const cuts = [...new Set(r.splits.map((s) => s % (r.data.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let from = 0;
      for (const cut of [...cuts, r.data.length]) {
        if (cut > from) chunks.push(r.data.subarray(from, cut));
        from = cut;
      }
      body = { framing: "chunked", chunks };
    }
    return { method: r.method, target, fields: r.fields, body, response: r.response };
  });

function serialise(spec: RequestSpec, id: number, close: boolean): Buffer {
  const lines = [`${spec.method} ${spec.target} HTTP/1.1`, "Host: example.test", `X-T-Id: ${id}`];
  for (const [name, value] of spec.fields) lines.push(`${name}: ${value}`);
  if (close) lines.push("Connection: close");
  const parts: Buffer[] = [];
  if (spec.body.framing === "length") {
    lines.push(`Content-Length: ${spec.body.data.length}`);
    parts.push(spec.body.data);
  }
  if (spec.body.framing === "chunked") {
    lines.push("Transfer-Encoding: chunked");
    for (const chunk of spec.body.chunks) {
      parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    }
    parts.push(Buffer.from("0\r\n\r\n"));
  }
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), ...parts]);
}

function requestBody(spec: RequestSpec): Buffer {
  if (spec.body.framing === "length") return spec.body.data;
  if (spec.body.framing === "chunked") return Buffer.concat(spec.body.chunks);
  return Buffer.alloc(0);
}

/** The backend answers each request with the response its X-T-Id names. */
function answering(responses: Map<string, { spec: ResponseSpec; method: string }>): Script {
  return {
    answer(request, c) {
      const id = headerValues(request, "x-t-id")[0] ?? "";
      const planned = responses.get(id);
      if (planned === undefined) {
        c.socket.write(fixed(200, "unplanned"));
        return;
      }
      const { spec, method } = planned;
      const noBody = spec.status === 204 || method === "HEAD";
      const lines = [`HTTP/1.1 ${spec.status} ${spec.reason}`, "Date: Tue, 01 Dec 2026 12:00:00 GMT"];
      for (const [name, value] of spec.fields) lines.push(`${name}: ${value}`);
      const data = spec.status === 204 ? Buffer.alloc(0) : spec.data;
      if (spec.status === 204) {
        c.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
        return;
      }
      if (spec.framing === "length" || (spec.framing === "close" && method === "HEAD")) {
        lines.push(`Content-Length: ${data.length}`);
        c.socket.write(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), noBody ? Buffer.alloc(0) : data]));
      } else if (spec.framing === "chunked") {
        lines.push("Transfer-Encoding: chunked");
        const body = noBody
          ? Buffer.alloc(0)
          : Buffer.concat([
              ...(data.length > 0 ? [Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")] : []),
              Buffer.from("0\r\n\r\n"),
            ]);
        c.socket.write(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body]));
      } else {
        lines.push("Connection: close");
        // Closed both ways once written, as servers do when they end a close-delimited body.
        c.socket.end(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), data]), () => c.socket.destroy());
      }
    },
  };
}

let nextId = 0;

async function exchange(h: RawHarness, specs: RequestSpec[], close: boolean): Promise<string | undefined> {
  const member = h.backend("solo");
  const responses = new Map<string, { spec: ResponseSpec; method: string }>();
  const ids = specs.map(() => String(++nextId));
  for (const [i, spec] of specs.entries()) {
    responses.set(ids[i] as string, { spec: spec.response, method: spec.method });
  }
  member.script = answering(responses);
  const client = await h.connect();
  try {
    await client.send(
      Buffer.concat(specs.map((spec, i) => serialise(spec, Number(ids[i]), close && i === specs.length - 1))),
    );
    const methods = specs.map((s) => s.method);
    const memberSaw = () =>
      JSON.stringify(member.connections.map((c) => c.bytes.toString("latin1").slice(0, 300)).slice(-specs.length));
    await client.when(
      () => client.responses(methods).messages.filter((m) => m.complete && m.status >= 200).length >= specs.length,
      `${specs.length} responses; got ${JSON.stringify(client.preview)}; the member saw ${memberSaw()}`,
      15_000,
    );
    const replies = client.responses(methods).messages.filter((m) => m.status >= 200);
    const received = new Map<string, Message>();
    for (const r of member.requests) received.set(headerValues(r, "x-t-id")[0] ?? "", r);

    for (const [i, spec] of specs.entries()) {
      const id = ids[i] as string;
      const where = `request ${i + 1}/${specs.length} (${spec.method} ${spec.target}, ${spec.body.framing})`;
      // At the member.
      const seen = received.get(id);
      if (seen === undefined) return `${where} never reached the member`;
      if (seen.method !== spec.method || seen.url !== spec.target)
        return `${where} arrived as ${seen.method} ${seen.url}`;
      const sent = endToEnd(serialised(spec, id), forwarded);
      const got = endToEnd(seen.rawHeaders, forwarded);
      if (JSON.stringify(sent) !== JSON.stringify(got)) {
        return `${where}: fields ${JSON.stringify(got)}, sent ${JSON.stringify(sent)}`;
      }
      if (headerValues(seen, "x-forwarded-for").length !== 1) return `${where}: X-Forwarded-For ${seen.rawHeaders}`;
      if (!seen.body.equals(requestBody(spec))) return `${where}: body of ${seen.body.length} bytes differs`;
      const framing = framingOk(seen, true);
      if (framing !== undefined) return `${where} at the member: ${framing}`;

      // At the client.
      const reply = replies[i];
      const r = spec.response;
      if (reply === undefined) return `${where}: no response`;
      if (reply.status !== r.status || reply.reason !== r.reason) {
        return `${where}: got ${reply.status} ${reply.reason}, member sent ${r.status} ${r.reason}`;
      }
      const expected = endToEnd(responseFields(r));
      const actual = endToEnd(reply.rawHeaders);
      if (JSON.stringify(expected) !== JSON.stringify(actual)) {
        return `${where}: response fields ${JSON.stringify(actual)}, member sent ${JSON.stringify(expected)}`;
      }
      const body = r.status === 204 || spec.method === "HEAD" ? Buffer.alloc(0) : r.data;
      if (!reply.body.equals(body))
        return `${where}: response body of ${reply.body.length} bytes, expected ${body.length}`;
      const replyFraming = framingOk(reply, spec.method !== "HEAD");
      if (replyFraming !== undefined) return `${where} at the client: ${replyFraming}`;
    }
    if (close) await client.when(() => client.ended, "the proxy to close after Connection: close", 15_000);
    return undefined;
  } finally {
    client.close();
  }
}

function serialised(spec: RequestSpec, id: string): string[] {
  const raw = ["Host", "example.test", "X-T-Id", id];
  for (const [name, value] of spec.fields) raw.push(name, value);
  return raw;
}

function responseFields(r: ResponseSpec): string[] {
  const raw = ["Date", "Tue, 01 Dec 2026 12:00:00 GMT"];
  for (const [name, value] of r.fields) raw.push(name, value);
  return raw;
}

test("random valid requests and responses pass through with only the documented rewrites", async (t) => {
  t.timeout(180_000, "a few hundred exchanges on a busy machine");
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  await fc.assert(
    fc.asyncProperty(fc.array(requestSpec, { minLength: 1, maxLength: 4 }), fc.boolean(), async (specs, close) => {
      const problem = await exchange(h, specs, close);
      if (problem !== undefined) throw new Error(problem);
    }),
    { numRuns: 200, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false, includeErrorInReport: true },
  );
  t.deepEqual(h.backend("solo").errors, [], "the member read strict HTTP throughout");
});

// ---------------------------------------------------------------------------
// Malformed requests

/**
 * Ways to break a valid request; each yields bytes llhttp in strict mode
 * refuses in the head, before anything could be forwarded. (Bodies that
 * break after a valid head are in test/hostile-smuggling.test.ts.)
 */
const breakages: { what: string; make: (target: string) => string }[] = [
  {
    what: "CL and TE",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  },
  {
    what: "two Content-Lengths",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
  },
  {
    what: "xchunked",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
  },
  {
    what: "chunked not last",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`,
  },
  { what: "space in a field name", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX Bad: 1\r\n\r\n` },
  { what: "space before the colon", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Bad : 1\r\n\r\n` },
  { what: "a field without a colon", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Bad\r\n\r\n` },
  { what: "bare LF", make: (p) => `GET ${p} HTTP/1.1\nHost: x\n\n` },
  { what: "obs-fold", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n` },
  { what: "NUL in a value", make: (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n` },
  { what: "bad method", make: (p) => `G(T ${p} HTTP/1.1\r\nHost: x\r\n\r\n` },
  { what: "bad version", make: (p) => `GET ${p} HTTP/1.x\r\nHost: x\r\n\r\n` },
  {
    what: "a Content-Length that is not a number",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nab`,
  },
  {
    what: "a negative Content-Length",

    make: (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nab`,
  },
];

test("random malformed requests get a 4xx and reach no backend", async (t) => {
  t.timeout(180_000, "a hundred exchanges on a busy machine");
  const h = await startRawProxy(["solo"]);
  t.teardown(() => h.close());
  const member = h.backend("solo");
  let after = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...breakages),
      fc.array(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
      async (breakage, path, behindGood) => {
        const known = new Set(member.requests);
        const client = await h.connect();
        try {
          const good = behindGood ? "GET /good HTTP/1.1\r\nHost: x\r\n\r\n" : "";
          await client.send(good + breakage.make(`/${path.join("/")}`));
          await client.when(() => client.ended, `the proxy to close after: ${breakage.what}`, 15_000);
          const last = client.responses().messages.at(-1);
          if (last === undefined || last.status < 400 || last.status > 499) {
            throw new Error(`${breakage.what}: got ${JSON.stringify(client.preview)}`);
          }
          // A later request on a new connection arrives; nothing complete of the malformed one ever did.
          const probe = await h.connect();
          await probe.send(`GET /after/${++after} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
          await probe.when(() => probe.ended, "the probe's response", 15_000);
          probe.close();
          const fresh = member.requests.filter((r) => !known.has(r));
          const complete = fresh.filter((r) => r.complete).map((r) => r.url);
          const expected = [...(behindGood ? ["/good"] : []), `/after/${after}`];
          if (JSON.stringify(complete.sort()) !== JSON.stringify(expected.sort())) {
            throw new Error(`${breakage.what}: the member got ${JSON.stringify(complete)}`);
          }
          const partial = fresh.filter((r) => !r.complete).map((r) => r.url);
          if (partial.length > 0) throw new Error(`${breakage.what}: the member got the head of ${partial}`);
        } finally {
          client.close();
        }
      },
    ),
    { numRuns: 100, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false, includeErrorInReport: true },
  );
  t.deepEqual(member.errors, []);
});
