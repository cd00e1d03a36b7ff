/**
 * Hostile HTTP/2 clients, held to the HTTP/1.1 standard: each attack is
 * sent frame by frame on a raw socket (test/helpers/h2frames.ts), and each
 * test checks what the attacker got (frames, GOAWAY and RST_STREAM codes),
 * what reached the members (the recording backends' requests and bytes),
 * that the member connections it used were freed, and that a well-behaved
 * node:http2 client on another connection was served throughout.
 *
 * The proxy runs on a manual clock: a stall is cut by advancing it, never
 * by waiting. A PING after a batch of frames is the sync point
 * (`sendSynced`): its ACK comes once the proxy has read everything before it.
 */

import type { ClientHttp2Session } from "node:http2";
import type { ExecutionContext } from "ava";
import test from "ava";
import type { ProxyConfig } from "../src/config.ts";
import { Ring } from "../src/ring/ring.ts";
import { ManualClock } from "./helpers/clock.ts";
import { closeSession, request as h2request, session } from "./helpers/h2.ts";
import {
  continuation,
  data,
  ErrorCode,
  errorName,
  Flag,
  FrameType,
  headerBlock,
  headersFrame,
  headersInPieces,
  hpack,
  ping,
  priority,
  RawH2Client,
  request,
  requestFields,
  responseHeaders,
  rstStream,
  Setting,
  settings,
  windowUpdate,
} from "./helpers/h2frames.ts";
import { fixed, type Message, type RawHarness, startRawProxy } from "./helpers/raw.ts";
import { selfSigned } from "./helpers/tls.ts";
import { until, within } from "./helpers/until.ts";

const names = ["alpha", "bravo"];
const ring = Ring.build(names);

/** Clients in clear text (h2c, prior knowledge) or over TLS (h2 by ALPN): the same sessions serve both. */
type Transport = "h2c" | "tls";
const transports: Transport[] = ["h2c", "tls"];
let certificate: ReturnType<typeof selfSigned> | undefined;

async function harness(
  t: ExecutionContext,
  options: { proxy?: (config: ProxyConfig) => void; transport?: Transport } = {},
) {
  const clock = new ManualClock();
  const tls = options.transport === "tls";
  if (tls) certificate ??= selfSigned("proxy");
  const h = await startRawProxy(names, {
    clock,
    ...(options.proxy === undefined ? {} : { proxy: options.proxy }),
    ...(tls && certificate !== undefined ? { tls: certificate } : {}),
  });
  const base = `${tls ? "https" : "http"}://127.0.0.1:${h.port}`;
  const clients: RawH2Client[] = [];
  t.teardown(async () => {
    for (const client of clients) client.close();
    // The proxy's shutdown deadline runs on its clock: move it past the deadline while it closes.
    const closing = h.close();
    await until(
      async () => {
        clock.advance(1_000);
        return Promise.race([closing.then(() => true), new Promise((resolve) => setTimeout(resolve, 10, false))]);
      },
      { what: "the proxy to close" },
    );
  });
  /** A raw HTTP/2 client, closed at the end of the test. */
  const connect = async (settings?: [number, number][]) => {
    const client = await RawH2Client.connect(h.port, { tls, ...(settings === undefined ? {} : { settings }) });
    clients.push(client);
    return client;
  };
  return { h, clock, connect, base };
}

/**
 * The test's clock jumps (to a deadline) while real connections are in
 * flight: the timeouts toward the members (connect, response, keep-alive)
 * are made to outlast the jumps, so that the well-behaved client's requests
 * are not timed out by them. The client-side deadlines under test stand.
 */
function outlastJumps(c: ProxyConfig): void {
  c.timeouts.connect = 3_600_000;
  c.timeouts.response = 3_600_000;
  c.timeouts.keepAlive = 3_600_000;
}

/** Every request the members got whose target starts with `prefix`. */
function reached(h: RawHarness, prefix: string): Message[] {
  return h.backends.flatMap((b) => b.requests.filter((r) => r.url.startsWith(prefix)));
}

/** Whether every member connection that carried a request under `prefix` is closed. */
function freed(h: RawHarness, prefix: string): boolean {
  return h.backends.every((b) =>
    b.connections.filter((c) => c.requests.some((r) => r.url.startsWith(prefix))).every((c) => c.closed),
  );
}

/**
 * Runs `attack` while a well-behaved node:http2 client on its own connection
 * asks for /good/N again and again (and once more after the attack): each
 * answer must come from the key's owner within the deadline.
 */
async function servedDuring<T>(t: ExecutionContext, base: string, attack: () => Promise<T>): Promise<T> {
  // Sessions the proxy told to go away (idle, as the test's clock jumps ahead).
  const wentAway = new WeakSet<ClientHttp2Session>();
  const open = async () => {
    const s = await session(base);
    s.on("goaway", () => wentAway.add(s));
    return s;
  };
  let client = await open();
  const failures: string[] = [];
  let served = 0;
  let retried = 0;
  let stop = false;
  const ask = async (path: string) => {
    // As any HTTP/2 client: a session that was told to go away is replaced, and a request that failed on it
    // unanswered (sent as the GOAWAY crossed it: RFC 9113 §6.8) is sent once more on the new one.
    for (let attempt = 0; ; attempt++) {
      if (client.closed || client.destroyed || wentAway.has(client)) client = await open();
      const used = client;
      const goneAway = () => attempt === 0 && (used.closed || used.destroyed || wentAway.has(used));
      try {
        const reply = await h2request(used, path);
        if (reply.status === 0 && goneAway()) {
          retried++;
          continue;
        }
        const expected = `${ring.ownerOf(path)} GET ${path}`;
        if (reply.status !== 200 || reply.text !== expected) failures.push(`${path}: ${reply.status} ${reply.text}`);
        else served++;
      } catch (error) {
        if (goneAway()) {
          retried++;
          continue;
        }
        failures.push(`${path}: ${(error as Error).message}`);
      }
      return;
    }
  };
  const loop = (async () => {
    for (let n = 0; !stop; n++) {
      await within(ask(`/good/${n}`), {
        what: `the well-behaved client's /good/${n} during the attack`,
        timeout: 10_000,
      });
      // Paced, so that the attack gets the CPU it needs.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    return await attack();
  } finally {
    stop = true;
    await loop;
    await within(ask("/good/after"), { what: "the well-behaved client's request after the attack", timeout: 10_000 });
    await closeSession(client);
    t.deepEqual(failures, [], "the well-behaved client was served throughout");
    if (retried > 0) t.log(`${retried} request(s) sent again after a GOAWAY crossed them`);
    t.true(served >= 1);
  }
}

/** The DATA of `stream` as text. */
function body(client: RawH2Client, stream: number): string {
  return Buffer.concat(client.of(FrameType.DATA, stream).map((f) => f.payload)).toString("latin1");
}

/** Waits for `stream` to end (END_STREAM on a HEADERS or DATA frame, or a reset). */
async function ended(client: RawH2Client, stream: number, what: string): Promise<void> {
  await client.when(
    (fs) =>
      fs.some(
        (f) =>
          f.streamId === stream &&
          (((f.type === FrameType.DATA || f.type === FrameType.HEADERS) && f.flags & Flag.END_STREAM) ||
            f.type === FrameType.RST_STREAM),
      ),
    what,
  );
}

// ---------------------------------------------------------------------------
// Rapid reset (CVE-2023-44487)

for (const transport of transports)
  test(`rapid reset: past 200 streams cancelled mid-exchange the client gets GOAWAY ENHANCE_YOUR_CALM and is closed; the members saw little more than the budget (${transport})`, async (t) => {
    const { h, connect, base } = await harness(t, { transport });
    await servedDuring(t, base, async () => {
      const attacker = await connect();
      let id = 1;
      for (let batch = 0; batch < 20 && !attacker.raw.ended; batch++) {
        const frames: Buffer[] = [];
        for (let i = 0; i < 50; i++, id += 2) frames.push(request(id, `/rr/${id}`), rstStream(id, ErrorCode.CANCEL));
        await attacker.sendSynced(...frames);
      }
      const goaway = await attacker.waitForGoaway("GOAWAY for the rapid resets");
      t.is(errorName(goaway.code), "ENHANCE_YOUR_CALM");
      await attacker.waitForClose("the attacker's connection to close after its GOAWAY");
      // The budget is 200 on a clock that does not move: the 201st cancellation, in the 5th batch, ends it (the 6th
      // should a read split a HEADERS from its RST_STREAM and that stream be answered in between).
      t.true(goaway.lastStreamId <= 2 * 300, `last stream ${goaway.lastStreamId}`);
    });
    t.true(reached(h, "/rr/").length <= 300, `${reached(h, "/rr/").length} cancelled requests reached a member`);
    t.log(
      `member connections: ${h.backends.map((b) => `${b.name} ${b.connections.length} (open ${b.open})`).join(", ")}; requests ${reached(h, "/rr/").length}`,
    );
    await until(() => freed(h, "/rr/"), { what: "every member connection a cancelled request used to be freed" });
  });

test("a client cancelling fewer streams than the budget keeps its connection and is served on it", async (t) => {
  const { h, connect } = await harness(t);
  const client = await connect();
  let id = 1;
  for (let batch = 0; batch < 3; batch++) {
    const frames: Buffer[] = [];
    for (let i = 0; i < 50; i++, id += 2) frames.push(request(id, `/cancel/${id}`), rstStream(id, ErrorCode.CANCEL));
    await client.sendSynced(...frames);
  }
  await client.send(request(id, "/after"));
  await ended(client, id, "the answer to /after");
  t.is(body(client, id), `${ring.ownerOf("/after")} GET /after`);
  t.is(client.goaway, undefined);
  // The one request after the cancellations reached its owner exactly as a plain GET.
  const [after] = reached(h, "/after");
  t.is(after?.method, "GET");
  t.true(after?.complete);
});

test("the rapid-reset budget comes back with time on the proxy's clock: 20 more a second after the first 200", async (t) => {
  const { h, clock, connect } = await harness(t);
  const client = await connect();
  let id = 1;
  const cancel = async (count: number) => {
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++, id += 2) frames.push(request(id, `/budget/${id}`), rstStream(id, ErrorCode.CANCEL));
    await client.sendSynced(...frames);
  };
  for (let batch = 0; batch < 4; batch++) await cancel(50);
  t.is(client.goaway, undefined, "200 cancellations are within the burst");
  clock.advance(1_000);
  await cancel(20);
  t.is(client.goaway, undefined, "a second later, 20 more are too");
  await cancel(1);
  const goaway = await client.waitForGoaway("GOAWAY for the 221st cancellation");
  t.is(errorName(goaway.code), "ENHANCE_YOUR_CALM");
  await client.waitForClose();
  t.true(reached(h, "/budget/").length <= 221);
  await until(() => freed(h, "/budget/"), { what: "the member connections of the cancelled streams to be freed" });
});

test("streams cancelled a second or more after they opened do not count: 300 of them leave the connection open", async (t) => {
  const { h, clock, connect } = await harness(t);
  const client = await connect();
  let id = 1;
  for (let round = 0; round < 3; round++) {
    const ids = Array.from({ length: 100 }, (_, i) => id + 2 * i);
    id += 200;
    await client.sendSynced(...ids.map((s) => request(s, `/watch/${s}`, { method: "POST", endStream: false })));
    clock.advance(1_000);
    await client.sendSynced(...ids.map((s) => rstStream(s, ErrorCode.CANCEL)));
  }
  t.is(client.goaway, undefined, "300 cancellations of streams that lived 1 s");
  await client.send(request(id, "/after"));
  await ended(client, id, "the answer to /after");
  t.is(body(client, id), `${ring.ownerOf("/after")} GET /after`);
  await until(() => freed(h, "/watch/"), { what: "the member connections of the cancelled streams to be freed" });
});

// ---------------------------------------------------------------------------
// SETTINGS and PING floods

for (const [name, make] of [
  ["SETTINGS", () => settings([[Setting.MAX_CONCURRENT_STREAMS, 100]])],
  ["PING", () => ping(7)],
] as const) {
  test(`a ${name} flood (10,000 in one write) ends the attacker's connection; nothing reaches a member`, async (t) => {
    const { h, connect, base } = await harness(t);
    await servedDuring(t, base, async () => {
      const attacker = await connect();
      await attacker.send(...Array.from({ length: 10_000 }, make));
      await attacker.waitForClose(`the connection of the ${name} flood to be closed`);
      // nghttp2 keeps at most 1,000 ACKs queued (flood detection): the flood is never answered in full.
      const acks = attacker.frames.filter((f) => f.type === FrameType[name] && f.flags & Flag.ACK).length;
      t.true(acks < 10_000, `${acks} ACKs`);
    });
    t.deepEqual(
      h.backends.map((b) => b.connections.length),
      h.backends.map((b) => b.connections.filter((c) => c.requests.every((r) => r.url.startsWith("/good/"))).length),
      "only the well-behaved client's requests reached the members",
    );
  });
}

test("a flood of empty DATA frames (CVE-2019-9518) ends the connection and frees the member connection of its stream", async (t) => {
  const { h, connect, base } = await harness(t);
  await servedDuring(t, base, async () => {
    const attacker = await connect();
    await attacker.send(request(1, "/empty/1", { method: "POST", endStream: false }));
    await attacker.send(...Array.from({ length: 10_000 }, () => data(1, "")));
    await attacker.waitForClose("the connection of the empty DATA flood to be closed");
  });
  t.false(
    reached(h, "/empty/").some((r) => r.complete),
    "no member got a whole request",
  );
  await until(() => freed(h, "/empty/"), { what: "the member connection of the flooded stream to be closed" });
});

test("a PRIORITY flood for idle streams is read and dropped; the next request on the connection is served", async (t) => {
  const { h, connect } = await harness(t);
  const client = await connect();
  await client.sendSynced(...Array.from({ length: 10_000 }, (_, i) => priority(2 * i + 1, 0, 1 + (i % 256))));
  const id = 2 * 10_000 + 1;
  await client.send(request(id, "/after-priority"));
  await ended(client, id, "the answer after the PRIORITY flood");
  t.is(body(client, id), `${ring.ownerOf("/after-priority")} GET /after-priority`);
  t.is(client.goaway, undefined);
  t.deepEqual(
    h.backends.flatMap((b) => b.requests.map((r) => r.url)),
    ["/after-priority"],
  );
});

test("a SETTINGS frame with more than 32 entries gets GOAWAY ENHANCE_YOUR_CALM, and the connection is closed at the idle deadline", async (t) => {
  const { connect, clock } = await harness(t);
  const attacker = await connect();
  const entries: [number, number][] = Array.from({ length: 100 }, (_, i) => [Setting.MAX_CONCURRENT_STREAMS, i]);
  await attacker.send(settings(entries));
  const goaway = await attacker.waitForGoaway();
  t.is(errorName(goaway.code), "ENHANCE_YOUR_CALM");
  // nghttp2 is done with the session, Node keeps the socket: the idle deadline and its linger close it.
  clock.advance(5_000 - 1);
  t.false(attacker.raw.ended, "open until the idle deadline");
  await until(
    () => {
      clock.advance(1_000);
      return attacker.raw.ended;
    },
    { what: "the connection to close as the clock passes the idle deadline and its linger" },
  );
});

// ---------------------------------------------------------------------------
// Header-list bombs

test("a header list past SETTINGS_MAX_HEADER_LIST_SIZE is refused before any member sees it; the connection goes on", async (t) => {
  const { h, connect, base } = await harness(t);
  await servedDuring(t, base, async () => {
    const client = await connect();
    // 40 fields of 1,000 bytes: 40 KB, twice the advertised limit, in HEADERS + 2 CONTINUATIONs.
    const extra: [string, string][] = Array.from({ length: 40 }, (_, i) => [`x-big-${i}`, "v".repeat(1_000)]);
    const block = headerBlock(requestFields("/bomb/size", { extra }));
    await client.send(headersInPieces(1, block, 16_384, { endStream: true }));
    await ended(client, 1, "the proxy to refuse stream 1");
    await client.send(request(3, "/next"));
    await ended(client, 3, "the answer to /next on the same connection");
    t.is(body(client, 3), `${ring.ownerOf("/next")} GET /next`);
    t.is(client.goaway, undefined);
    // nghttp2 resets the stream (RFC 9113 §10.5.1 allows that or a 431): ENHANCE_YOUR_CALM.
    t.is(errorName(client.resets.get(1) ?? -1), "ENHANCE_YOUR_CALM");
  });
  t.deepEqual(reached(h, "/bomb/"), []);
});

test("more header fields than proxy.limits.headers are refused before any member sees them", async (t) => {
  const { h, connect } = await harness(t);
  const client = await connect();
  const extra: [string, string][] = Array.from({ length: 300 }, (_, i) => [`x${i}`, "v"]);
  await client.send(headersFrame(1, headerBlock(requestFields("/bomb/fields", { extra })), { endStream: true }));
  await ended(client, 1, "the proxy to refuse stream 1");
  await client.send(request(3, "/next"));
  await ended(client, 3, "the answer to /next");
  t.is(body(client, 3), `${ring.ownerOf("/next")} GET /next`);
  t.deepEqual(reached(h, "/bomb/"), []);
  t.is(errorName(client.resets.get(1) ?? -1), "ENHANCE_YOUR_CALM");
});

test("a CONTINUATION flood (CVE-2024-27316 style) ends the connection; nothing reaches a member", async (t) => {
  const { h, connect, base } = await harness(t);
  await servedDuring(t, base, async () => {
    const attacker = await connect();
    const frames = [headersFrame(1, headerBlock(requestFields("/bomb/continuation")), { endHeaders: false })];
    for (let i = 0; i < 1_000; i++) frames.push(continuation(1, headerBlock([["x-c", "y"]]), false));
    await attacker.send(...frames);
    await attacker.waitForClose("the CONTINUATION flood's connection to close");
    t.log(`GOAWAY: ${attacker.goaway === undefined ? "none seen" : errorName(attacker.goaway.code)}`);
  });
  t.deepEqual(reached(h, "/bomb/"), []);
});

test("HPACK dynamic-table abuse: one large entry referenced many times is refused; a table size past ours is a COMPRESSION_ERROR", async (t) => {
  const { h, connect } = await harness(t);
  const client = await connect();
  // Stream 1 puts a 4,000-byte field in the proxy's decoder table (within the limits: served).
  const entry = hpack.literalIndexed("x-bomb", "b".repeat(4_000));
  await client.send(
    headersFrame(1, Buffer.concat([headerBlock(requestFields("/table/1")), entry]), { endStream: true }),
  );
  await ended(client, 1, "the answer to /table/1");
  t.is(body(client, 1), `${ring.ownerOf("/table/1")} GET /table/1`);
  // Stream 3 names it 50 times in 50 bytes: 200 KB once decoded.
  const refs = Buffer.concat(Array.from({ length: 50 }, () => hpack.indexed(62)));
  await client.send(
    headersFrame(3, Buffer.concat([headerBlock(requestFields("/table/3")), refs]), { endStream: true }),
  );
  await ended(client, 3, "the proxy to refuse stream 3");
  t.is(errorName(client.resets.get(3) ?? -1), "ENHANCE_YOUR_CALM", "stream 3 reset");
  // The table is intact: stream 5 names the entry once and is served with it.
  await client.send(
    headersFrame(5, Buffer.concat([headerBlock(requestFields("/table/5")), hpack.indexed(62)]), { endStream: true }),
  );
  await ended(client, 5, "the answer to /table/5");
  t.is(body(client, 5), `${ring.ownerOf("/table/5")} GET /table/5`);
  const got = reached(h, "/table/");
  t.deepEqual(got.map((r) => r.url).sort(), ["/table/1", "/table/5"]);
  for (const r of got) t.is(r.rawHeaders[r.rawHeaders.indexOf("x-bomb") + 1], "b".repeat(4_000));

  // A dynamic table size update above the 4,096 bytes the proxy advertised (RFC 7541 §6.3).
  const other = await connect();
  await other.send(
    headersFrame(1, Buffer.concat([hpack.tableSizeUpdate(1 << 20), headerBlock(requestFields("/table/big"))]), {
      endStream: true,
    }),
  );
  const goaway = await other.waitForGoaway();
  t.is(errorName(goaway.code), "COMPRESSION_ERROR");
  t.deepEqual(reached(h, "/table/big"), []);
});

test("a header block that never ends is closed at the idle deadline", async (t) => {
  const { h, clock, connect } = await harness(t);
  const attacker = await connect();
  await attacker.send(headersFrame(1, headerBlock(requestFields("/bomb/unfinished")), { endHeaders: false }));
  await until(
    () => {
      clock.advance(1_000);
      return attacker.raw.ended;
    },
    { what: "the unfinished header block's connection to close as the clock moves" },
  );
  t.deepEqual(reached(h, "/bomb/"), []);
});

test("a session kept busy with PINGs but no stream is still closed at the idle deadline", async (t) => {
  const { h, clock, connect } = await harness(t);
  const client = await connect();
  // clientIdle is 5 s: a PING every second for 4 s is answered, and changes nothing.
  for (let second = 0; second < 4; second++) {
    await client.sendSynced();
    clock.advance(1_000);
  }
  t.is(client.goaway, undefined, "not idle for 5 s yet");
  await until(
    async () => {
      await client.sendSynced();
      clock.advance(1_000);
      return client.raw.ended;
    },
    { what: "the PINGing session to be closed as the clock passes the idle deadline" },
  );
  t.is(errorName(client.goaway?.code ?? -1), "NO_ERROR");
  t.deepEqual(reached(h, "/"), []);
});

// ---------------------------------------------------------------------------
// Stalls

for (const transport of transports)
  test(`a stream that never sends END_STREAM gets 408 at the body deadline and its member connection is freed (${transport})`, async (t) => {
    const { h, clock, connect, base } = await harness(t, {
      proxy: (c) => {
        c.timeouts.body = 30_000;
        outlastJumps(c);
      },
    });
    await servedDuring(t, base, async () => {
      const attacker = await connect();
      await attacker.send(request(1, "/stall/1", { method: "POST", endStream: false }), data(1, "partial"));
      const owner = h.backend(ring.ownerOf("/stall/1") as string);
      await until(() => owner.connections.some((c) => c.bytes.toString("latin1").includes("partial")), {
        what: "the member to get the head and the partial body",
      });
      clock.advance(29_999);
      t.is(attacker.of(FrameType.HEADERS, 1).length, 0, "nothing before the deadline");
      clock.advance(1);
      await ended(attacker, 1, "the 408 for the stalled stream");
      const [reply] = await responseHeaders(attacker.raw.received, 1);
      t.is(Number(reply?.[":status"]), 408);
    });
    await until(() => freed(h, "/stall/"), { what: "the stalled stream's member connection to be closed" });
    const [request1] = reached(h, "/stall/");
    t.false(request1?.complete, "the member never got a whole request");
  });

for (const transport of transports)
  test(`a client that never opens its window is cut at proxy.timeouts.clientWrite and the member connection is freed (${transport})`, async (t) => {
    const { h, clock, connect, base } = await harness(t, {
      proxy: (c) => {
        c.timeouts.clientWrite = 60_000;
        outlastJumps(c);
      },
    });
    // More than the loopback socket buffers hold: the member's writes back up once the proxy stops reading.
    const size = 32 * 1024 * 1024;
    for (const b of h.backends) {
      b.script = {
        answer(request, c) {
          if (!request.url.startsWith("/big")) {
            c.socket.write(fixed(200, `${c.backend.name} ${request.method} ${request.url}`));
            return;
          }
          c.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
          c.socket.write(Buffer.alloc(size, 0x78));
        },
      };
    }
    await servedDuring(t, base, async () => {
      const attacker = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      await attacker.send(request(1, "/big/1"));
      await attacker.when(() => attacker.of(FrameType.HEADERS, 1).length > 0, "the response head (no window needed)");
      const member = h.backend(ring.ownerOf("/big/1") as string);
      await until(() => member.connections.some((c) => c.socket.writableLength > 8 * 1024 * 1024), {
        what: "the member's writes to back up behind the proxy (it stopped reading for the stalled client)",
      });
      clock.advance(59_999);
      t.is(attacker.resets.get(1), undefined, "not cut before clientWrite");
      clock.advance(1);
      await attacker.when(() => attacker.resets.get(1), "the stream to be reset at clientWrite");
      t.is(errorName(attacker.resets.get(1) ?? -1), "CANCEL");
      t.is(body(attacker, 1), "", "no DATA without a window");
      t.is(attacker.goaway, undefined, "the session itself stays usable");
    });
    await until(() => freed(h, "/big/"), { what: "the zero-window stream's member connection to be closed" });
  });

test("a client that opens its window a few bytes at a time is cut at clientWrite all the same", async (t) => {
  const { h, clock, connect } = await harness(t, {
    proxy: (c) => {
      c.timeouts.clientWrite = 60_000;
      outlastJumps(c);
    },
  });
  for (const b of h.backends)
    b.script = { answer: (_r, c) => void c.socket.write(fixed(200, "t".repeat(1024 * 1024))) };
  const client = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
  await client.send(request(1, "/trickle/1"));
  await client.when(() => client.of(FrameType.HEADERS, 1).length > 0, "the response head");
  // 10 bytes of window every 10 s: the response goes on arriving, far slower than a reader would take it.
  let elapsed = 0;
  while (elapsed < 200_000) {
    await client.sendSynced(windowUpdate(1, 10), windowUpdate(0, 10));
    if (client.resets.get(1) !== undefined) break;
    clock.advance(10_000);
    elapsed += 10_000;
  }
  t.true(elapsed <= 70_000, `reset after ${elapsed / 1000} s of the clock: clientWrite (60 s) from the first stall`);
  t.is(errorName(client.resets.get(1) ?? -1), "CANCEL");
  const got = body(client, 1).length;
  t.true(got > 0 && got <= 200, `${got} bytes arrived before the cut`);
  await until(() => freed(h, "/trickle/"), { what: "the trickling stream's member connection to be closed" });
});

test("100 zero-window streams on one connection hold at most 100 member requests, until each is reset (past the session's 8 held stalls after 1 s, those 8 at clientWrite) and its connection freed", async (t) => {
  const { h, clock, connect, base } = await harness(t, {
    proxy: (c) => {
      c.timeouts.clientWrite = 60_000;
      outlastJumps(c);
      // The clock runs 10 s a check here: the well-behaved client's fresh sessions must not go idle under it.
      c.timeouts.clientIdle = 3_600_000;
    },
  });
  for (const b of h.backends) {
    b.script = {
      answer(request, c) {
        const text = request.url.startsWith("/zw/")
          ? "z".repeat(256 * 1024)
          : `${c.backend.name} ${request.method} ${request.url}`;
        c.socket.write(fixed(200, text));
      },
    };
  }
  await servedDuring(t, base, async () => {
    // No stream window and, past the first 65,535 bytes, no connection window either.
    const attacker = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
    const ids = Array.from({ length: 100 }, (_, i) => 2 * i + 1);
    await attacker.send(...ids.map((id) => request(id, `/zw/${id}`)));
    await until(() => reached(h, "/zw/").length === 100, { what: "the 100 requests at the members" });
    await attacker.when(() => ids.every((id) => attacker.of(FrameType.HEADERS, id).length > 0), "100 response heads");
    // The clock moves 10 s a check, but never more than 10 minutes in all: further, and a well-behaved request
    // in flight would pass the members' (hour-long) deadlines while a slow machine processes the resets.
    let moved = 0;
    await until(
      () => {
        if (moved < 600_000) {
          clock.advance(10_000);
          moved += 10_000;
        }
        return ids.every((id) => attacker.resets.get(id) === ErrorCode.CANCEL);
      },
      { what: "every stalled stream to be reset as the clock passes clientWrite" },
    );
    t.true(moved <= 80_000, `reset ${moved / 1000} s of the clock after the heads: clientWrite (60 s) from the stall`);
    t.is(attacker.of(FrameType.DATA).length, 0, "no DATA without a window");
  });
  await until(() => freed(h, "/zw/"), { what: "the member connections of the 100 stalled streams to be closed" });
});

test("connections whose unread streams hold member connections do not take the member's pool: past proxy.connections / 16 a session's stalls are cut after 1 s and its new streams refused; a well-behaved client is served", async (t) => {
  // 16 connections to a member: each session may hold 1 of them while it reads nothing.
  const { h, clock, connect } = await harness(t, {
    proxy: (c) => {
      c.connections = 16;
      c.timeouts.clientWrite = 60_000;
      c.timeouts.queue = 3_600_000;
      outlastJumps(c);
    },
  });
  for (const b of h.backends) {
    b.script = {
      answer(request, c) {
        const text = request.url.startsWith("/hold/")
          ? "z".repeat(256 * 1024)
          : `${c.backend.name} ${request.method} ${request.url}`;
        c.socket.write(fixed(200, text));
      },
    };
  }
  // Every key below belongs to one member: 4 sessions × 6 unread streams would take 24 of its 16 connections.
  const keys = (prefix: string, count: number) => {
    const out: string[] = [];
    for (let i = 0; out.length < count; i++) if (ring.ownerOf(`${prefix}${i}`) === "alpha") out.push(`${prefix}${i}`);
    return out;
  };
  const hold = keys("/hold/", 24);
  const alpha = h.backend("alpha");
  const attackers: RawH2Client[] = [];
  for (let a = 0; a < 4; a++) {
    const attacker = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
    attackers.push(attacker);
    await attacker.send(...hold.slice(a * 6, a * 6 + 6).map((key, i) => request(2 * i + 1, key)));
  }
  await until(() => reached(h, "/hold/").length >= 16, { what: "the member's 16 connections taken by unread streams" });
  t.is(alpha.connections.length, 16, "the member's pool is full");

  // A well-behaved client asks the same member; it is answered once the clock passes the 1 s grace.
  const good = await connect();
  const [goodKey] = keys("/good/", 1) as [string];
  await good.send(request(1, goodKey));
  for (let step = 0; step < 10 && good.of(FrameType.HEADERS, 1).length === 0; step++) {
    clock.advance(500);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await ended(good, 1, "the well-behaved client's response");
  const [reply] = await responseHeaders(good.raw.received, 1);
  t.is(Number(reply?.[":status"]), 200);
  t.is(body(good, 1), `alpha GET ${goodKey}`);
  const carried = alpha.connections.find((c) => c.requests.some((r) => r.url === goodKey));
  t.is(
    carried?.bytes.toString("latin1"),
    `GET ${goodKey} HTTP/1.1\r\nhost: localhost\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: localhost\r\n\r\n`,
    "the exact request the member got",
  );

  // Each attacker keeps at most one stalled stream (cut at clientWrite); the rest were reset (CANCEL).
  // The clock moves 0.5 s a check, 30 s at most: short of clientWrite, which would cut the held streams too.
  let moved = 0;
  await until(
    () => {
      if (moved < 30_000) {
        clock.advance(500);
        moved += 500;
      }
      return attackers.every((a) => a.resets.size >= 5);
    },
    { what: "all but one stalled stream of each attacker to be reset" },
  );
  for (const attacker of attackers) {
    const codes = [...attacker.resets.values()].map(errorName);
    t.true(
      codes.length === 5 && codes.every((c) => c === "CANCEL"),
      `one stream held, 5 cancelled: ${codes.join(",")}`,
    );
  }
  await until(
    () => alpha.connections.filter((c) => !c.closed && c.requests.some((r) => r.url.startsWith("/hold/"))).length <= 4,
    { what: "the member connections of the cut streams to be closed" },
  );
  // At its cap, a session's new stream is refused before it reaches a member: the client may send it again.
  const [first] = attackers as [RawH2Client];
  const [late] = keys("/late/", 1) as [string];
  await first.sendSynced(request(13, late));
  await first.when(() => first.resets.get(13), "the new stream on a session at its cap to be refused");
  t.is(errorName(first.resets.get(13) ?? -1), "REFUSED_STREAM");
  t.deepEqual(reached(h, "/late/"), [], "the refused stream reached no member");
});

test("past the session's cap, a stream whose member already answered in full holds nothing: it keeps clientWrite", async (t) => {
  const { h, clock, connect } = await harness(t, {
    proxy: (c) => {
      c.connections = 16;
      c.timeouts.clientWrite = 60_000;
      outlastJumps(c);
    },
  });
  let heldHead: () => void = () => {};
  const held = new Promise<void>((resolve) => (heldHead = resolve));
  for (const b of h.backends) {
    b.script = {
      answer(request, c) {
        if (request.url.startsWith("/hold/")) c.socket.write(fixed(200, "z".repeat(256 * 1024)));
        // The small answer comes once the other stream stalled: this one is the session's second (16 / 16 = 1).
        else void held.then(() => c.socket.write(fixed(200, "s".repeat(20_000))));
      },
    };
  }
  const attacker = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
  await attacker.send(request(1, "/hold/1"), request(3, "/small/3"));
  await attacker.when(() => attacker.of(FrameType.HEADERS, 1).length > 0, "the held stream's head");
  heldHead();
  await attacker.when(() => attacker.of(FrameType.HEADERS, 3).length > 0, "the small response's head");
  clock.advance(2_000);
  await attacker.sendSynced(ping());
  t.is(attacker.resets.get(3), undefined, "not cut at the 1 s grace: it holds no member");
  clock.advance(58_000);
  await attacker.when(
    () => attacker.resets.get(3) !== undefined && attacker.resets.get(1) !== undefined,
    "both cut at clientWrite",
  );
  t.is(errorName(attacker.resets.get(3) ?? -1), "CANCEL");
  t.is(errorName(attacker.resets.get(1) ?? -1), "CANCEL");
});

// ---------------------------------------------------------------------------
// Many streams

for (const transport of transports)
  test(`a connection that opens 10,000 streams: at most 100 reach the members, the rest are refused, the connection is closed and every member connection freed (${transport})`, async (t) => {
    const { h, connect, base } = await harness(t, { transport });
    await servedDuring(t, base, async () => {
      const attacker = await connect();
      let id = 1;
      for (let batch = 0; batch < 20 && !attacker.raw.ended; batch++) {
        const frames: Buffer[] = [];
        for (let i = 0; i < 500; i++, id += 2)
          frames.push(request(id, `/many/${id}`, { method: "POST", endStream: false }));
        await attacker.sendSynced(...frames);
      }
      await attacker.waitForClose("the 10,000-stream connection to close");
      const codes = new Map<string, number>();
      for (const code of attacker.resets.values()) codes.set(errorName(code), (codes.get(errorName(code)) ?? 0) + 1);
      const goaway = attacker.goaway;
      t.log(
        `RST_STREAM ${JSON.stringify([...codes])}; GOAWAY ${goaway ? `${errorName(goaway.code)}, last ${goaway.lastStreamId}` : "none seen"}`,
      );
    });
    t.true(reached(h, "/many/").length <= 100, `${reached(h, "/many/").length} streams reached a member`);
    await until(() => freed(h, "/many/"), { what: "every member connection the streams used to be closed" });
  });
