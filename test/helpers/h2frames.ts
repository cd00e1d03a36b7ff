/**
 * HTTP/2 frames built by hand (RFC 9113 §4, §6), for clients that misbehave
 * on purpose: a well-behaved library would refuse to send most of what the
 * hostile tests need (a reset after every HEADERS, a header block cut into a
 * thousand CONTINUATIONs, a window that never opens).
 *
 * Header blocks use only HPACK's "literal without indexing, new name" with
 * raw (non-Huffman) strings (RFC 7541 §6.2.2, §5.1, §5.2): one form, small
 * enough to check by eye, and it leaves the server's dynamic table alone.
 *
 * The reader splits what the server sends into frames; it interprets only
 * the fixed-layout payloads (GOAWAY, RST_STREAM, SETTINGS, WINDOW_UPDATE).
 * Response header blocks are decoded by node:http2 itself
 * (`responseHeaders`), never by a hand-written HPACK decoder.
 */
import { type ClientHttp2Stream, connect as h2connect, type IncomingHttpHeaders } from "node:http2";
import { Duplex } from "node:stream";
import { RawClient } from "./raw.ts";
import { until } from "./until.ts";

/** The client connection preface (RFC 9113 §3.4). */
export const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** The name of an error code, for assertion messages. */
export function errorName(code: number): string {
  return Object.entries(ErrorCode).find(([, value]) => value === code)?.[0] ?? `0x${code.toString(16)}`;
}

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

// ---------------------------------------------------------------------------
// Building frames

/** One frame: the 9-byte header (length, type, flags, stream id) and the payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** A SETTINGS frame with these (identifier, value) pairs, in order. */
export function settings(entries: [number, number][] = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function settingsAck(): Buffer {
  return frame(FrameType.SETTINGS, Flag.ACK, 0);
}

/** An HPACK integer with an `prefixBits`-bit prefix; `high` holds the bits above the prefix (RFC 7541 §5.1). */
export function hpackInteger(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const bytes = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** An HPACK string literal, raw octets (H = 0). */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7), bytes]);
}

/** A header block of "literal without indexing, new name" fields, in order. */
export function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

/**
 * HPACK's other representations, for dynamic-table abuse: a literal that the
 * server must add to its dynamic table (§6.2.1), a reference to an entry by
 * index (§6.1: 1–61 static, 62 on the newest dynamic entry) and a dynamic
 * table size update (§6.3).
 */
export const hpack = {
  literalIndexed(name: string, value: string): Buffer {
    return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
  },
  indexed(index: number): Buffer {
    return hpackInteger(index, 7, 0x80);
  },
  tableSizeUpdate(size: number): Buffer {
    return hpackInteger(size, 5, 0x20);
  },
};

/** The pseudo-header fields of a request, then `extra`. */
export function requestFields(
  path: string,
  options: { method?: string; authority?: string; extra?: [string, string][] } = {},
): [string, string][] {
  return [
    [":method", options.method ?? "GET"],
    [":scheme", "http"],
    [":authority", options.authority ?? "localhost"],
    [":path", path],
    ...(options.extra ?? []),
  ];
}

/** A HEADERS frame carrying `block` (a header block fragment). */
export function headersFrame(
  streamId: number,
  block: Buffer,
  options: { endStream?: boolean; endHeaders?: boolean } = {},
): Buffer {
  const flags = (options.endStream ? Flag.END_STREAM : 0) | (options.endHeaders === false ? 0 : Flag.END_HEADERS);
  return frame(FrameType.HEADERS, flags, streamId, block);
}

export function continuation(streamId: number, fragment: Buffer, endHeaders: boolean): Buffer {
  return frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, fragment);
}

/** A request's HEADERS frame (GET with END_STREAM unless `endStream: false`). */
export function request(
  streamId: number,
  path: string,
  options: { method?: string; authority?: string; extra?: [string, string][]; endStream?: boolean } = {},
): Buffer {
  return headersFrame(streamId, headerBlock(requestFields(path, options)), { endStream: options.endStream ?? true });
}

/**
 * `block` cut into a HEADERS frame and CONTINUATION frames of at most
 * `pieceSize` bytes each; END_HEADERS on the last one unless `endHeaders: false`
 * (a block that never ends).
 */
export function headersInPieces(
  streamId: number,
  block: Buffer,
  pieceSize: number,
  options: { endStream?: boolean; endHeaders?: boolean } = {},
): Buffer {
  const pieces: Buffer[] = [];
  for (let at = 0; at < block.length; at += pieceSize) pieces.push(block.subarray(at, at + pieceSize));
  if (pieces.length === 0) pieces.push(Buffer.alloc(0));
  const end = options.endHeaders !== false;
  return Buffer.concat(
    pieces.map((piece, i) => {
      const last = i === pieces.length - 1;
      return i === 0
        ? headersFrame(streamId, piece, { endStream: options.endStream ?? false, endHeaders: last && end })
        : continuation(streamId, piece, last && end);
    }),
  );
}

export function data(streamId: number, payload: Buffer | string, endStream = false): Buffer {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "latin1") : payload;
  return frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, bytes);
}

export function rstStream(streamId: number, code: number = ErrorCode.CANCEL): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

/** A PING with 8 opaque bytes (the number `opaque`, big-endian). */
export function ping(opaque: bigint | number = 0, ack = false): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64BE(BigInt(opaque), 0);
  return frame(FrameType.PING, ack ? Flag.ACK : 0, 0, payload);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment & 0x7fffffff, 0);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function goaway(lastStreamId: number, code: number = ErrorCode.NO_ERROR, debug = ""): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, Buffer.concat([payload, Buffer.from(debug, "latin1")]));
}

export function priority(streamId: number, dependsOn: number, weight = 16, exclusive = false): Buffer {
  const payload = Buffer.alloc(5);
  payload.writeUInt32BE(((exclusive ? 0x80000000 : 0) | (dependsOn & 0x7fffffff)) >>> 0, 0);
  payload[4] = weight - 1;
  return frame(FrameType.PRIORITY, 0, streamId, payload);
}

// ---------------------------------------------------------------------------
// Reading frames

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits a byte stream into frames; an incomplete frame at the end waits for more bytes. */
export class FrameReader {
  readonly frames: Frame[] = [];
  #pending: Buffer = Buffer.alloc(0);
  /** Bytes pushed in all, including an incomplete frame at the end. */
  bytes = 0;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      this.frames.push({
        type: buffer[3] as number,
        flags: buffer[4] as number,
        streamId: buffer.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(buffer.subarray(9, 9 + length)),
      });
      buffer = buffer.subarray(9 + length);
    }
    this.#pending = Buffer.from(buffer);
  }

  /** Frames of `type` (on `streamId`, if given). */
  of(type: number, streamId?: number): Frame[] {
    return this.frames.filter((f) => f.type === type && (streamId === undefined || f.streamId === streamId));
  }
}

/** Splits a whole byte stream into frames. */
export function readFrames(bytes: Buffer): Frame[] {
  const reader = new FrameReader();
  reader.push(bytes);
  return reader.frames;
}

export interface Goaway {
  lastStreamId: number;
  code: number;
  debug: string;
}

export function goawayOf(f: Frame): Goaway {
  if (f.type !== FrameType.GOAWAY) throw new Error(`frame type ${f.type} is not GOAWAY`);
  return {
    lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff,
    code: f.payload.readUInt32BE(4),
    debug: f.payload.subarray(8).toString("latin1"),
  };
}

export function rstCodeOf(f: Frame): number {
  if (f.type !== FrameType.RST_STREAM) throw new Error(`frame type ${f.type} is not RST_STREAM`);
  return f.payload.readUInt32BE(0);
}

export function settingsOf(f: Frame): Map<number, number> {
  if (f.type !== FrameType.SETTINGS) throw new Error(`frame type ${f.type} is not SETTINGS`);
  const entries = new Map<number, number>();
  for (let at = 0; at + 6 <= f.payload.length; at += 6)
    entries.set(f.payload.readUInt16BE(at), f.payload.readUInt32BE(at + 2));
  return entries;
}

export function windowIncrementOf(f: Frame): number {
  if (f.type !== FrameType.WINDOW_UPDATE) throw new Error(`frame type ${f.type} is not WINDOW_UPDATE`);
  return f.payload.readUInt32BE(0) & 0x7fffffff;
}

/** A one-line account of frames, for assertion messages: `SETTINGS(0) HEADERS(1) RST_STREAM(1,CANCEL)`. */
export function describe(frames: Frame[]): string {
  const names = Object.fromEntries(Object.entries(FrameType).map(([name, value]) => [value, name]));
  const parts = frames.map((f) => {
    const name = names[f.type] ?? `type${f.type}`;
    if (f.type === FrameType.GOAWAY) {
      const g = goawayOf(f);
      return `GOAWAY(last ${g.lastStreamId},${errorName(g.code)}${g.debug ? `,"${g.debug}"` : ""})`;
    }
    if (f.type === FrameType.RST_STREAM) return `RST_STREAM(${f.streamId},${errorName(rstCodeOf(f))})`;
    const ack = (f.type === FrameType.SETTINGS || f.type === FrameType.PING) && f.flags & Flag.ACK ? ",ACK" : "";
    return `${name}(${f.streamId}${ack})`;
  });
  if (parts.length <= 40) return parts.join(" ");
  return `${parts.slice(0, 20).join(" ")} …(${parts.length} frames)… ${parts.slice(-20).join(" ")}`;
}

// ---------------------------------------------------------------------------
// Decoding response headers with node:http2

/**
 * The response header blocks a server sent, decoded by a node:http2 client
 * session fed the server's bytes: the session opens streams 1, 3, 5, … (as
 * many as `streams`), so the raw client must have used those ids in that
 * order. Resolves with each stream's response headers (undefined where none
 * came: the stream was reset or the bytes end before it).
 */
export async function responseHeaders(
  serverBytes: Buffer,
  streams: number,
): Promise<(IncomingHttpHeaders | undefined)[]> {
  const sent = new FrameReader();
  let written = Buffer.alloc(0);
  const feed = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      // The decoding session's own frames (after its preface) go nowhere, once seen.
      if (written.length < preface.length) {
        written = Buffer.concat([written, chunk]);
        if (written.length > preface.length) sent.push(written.subarray(preface.length));
      } else sent.push(chunk);
      callback();
    },
  });
  const session = h2connect("http://decoder.invalid", { createConnection: () => feed as never });
  session.on("error", () => {});
  const results: (IncomingHttpHeaders | undefined)[] = new Array(streams).fill(undefined);
  const opened: ClientHttp2Stream[] = [];
  for (let i = 0; i < streams; i++) {
    const stream = session.request({ ":path": "/" }, { endStream: true });
    stream.on("error", () => {});
    stream.on("response", (headers) => (results[i] = headers));
    stream.resume();
    opened.push(stream);
  }
  // After the server's frames (whole ones only), a PING of our own: once the session reports it, all before it was read.
  const sentinel = 0x5e4714e1n;
  // Only what carries header state. The server's flow-control credits answer what the raw client sent, not the
  // decoding session (a WINDOW_UPDATE that fills the raw client's window overflows the session's); a reset or a
  // GOAWAY could close a stream before node emits its headers.
  const carriesHeaders = new Set<number>([FrameType.SETTINGS, FrameType.HEADERS, FrameType.CONTINUATION]);
  const whole = readFrames(serverBytes)
    .filter((f) => carriesHeaders.has(f.type))
    .map((f) => frame(f.type, f.flags, f.streamId, f.payload));
  let done = false;
  session.on("ping", (payload: Buffer) => (done ||= payload.readBigUInt64BE(0) === sentinel));
  try {
    // The server's answers must find the streams open: their HEADERS must have been sent.
    await until(() => sent.of(FrameType.HEADERS).length === streams, {
      what: `the decoding session to send ${streams} HEADERS`,
      timeout: 10_000,
    });
    // The server's SETTINGS ACK answers the raw client's SETTINGS; the decoding session takes it for its own.
    feed.push(Buffer.concat([...whole, ping(sentinel)]));
    await until(() => done || session.destroyed, {
      what: "node:http2 to read the server's frames",
      timeout: 10_000,
    });
    // Events of what was read are emitted later: the end of the bytes closes every stream after them.
    feed.push(null);
    await until(() => opened.every((stream) => stream.destroyed), {
      what: "the decoding session's streams to close",
      timeout: 10_000,
    });
  } finally {
    session.destroy();
  }
  return results;
}

// ---------------------------------------------------------------------------
// A raw HTTP/2 client

/**
 * A client that speaks HTTP/2 frame by frame on a raw socket: it sends the
 * preface and its SETTINGS, ACKs the server's SETTINGS (so that a server
 * waiting for the ACK is not the reason anything happens), and does nothing
 * else unless told: it never opens a window nor answers a PING by itself.
 */
export class RawH2Client {
  readonly reader = new FrameReader();

  private constructor(readonly raw: RawClient) {
    // Before the RawClient's own listener, which wakes the waiters: they must see the new frames.
    raw.socket.prependListener("data", (chunk: Buffer) => {
      const before = this.reader.frames.length;
      this.reader.push(chunk);
      for (const f of this.reader.frames.slice(before)) {
        if (f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK) && !raw.socket.destroyed)
          raw.socket.write(settingsAck());
      }
    });
  }

  /**
   * Connects (in clear text, or with `tls` over TLS), sends the preface and a SETTINGS frame with `settings`, and
   * waits for the server's SETTINGS (which it ACKs at once), so that no ACK
   * of ours falls later inside a header block the test sends in pieces.
   */
  static async connect(port: number, options: { settings?: [number, number][]; tls?: boolean } = {}) {
    // Over TLS, h2 is chosen by ALPN.
    const raw = options.tls ? await RawClient.connectTls(port, ["h2"]) : await RawClient.connect(port);
    const client = new RawH2Client(raw);
    await client.send(preface, settings(options.settings ?? []));
    await client.when(
      (frames) => frames.some((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)),
      `the server's SETTINGS on 127.0.0.1:${port}`,
    );
    return client;
  }

  /** Sends the buffers as one write; a socket the server already closed is not an error (what it sent stays readable). */
  async send(...buffers: Buffer[]): Promise<void> {
    if (this.raw.socket.destroyed || this.raw.ended) return;
    await this.raw.send(Buffer.concat(buffers)).catch(() => {});
  }

  #pings = 0n;

  /**
   * Sends `frames` and a PING, and waits for its ACK (or the close): the
   * server has then read all of them, as it answers a PING in order.
   */
  async sendSynced(...frames: Buffer[]): Promise<void> {
    const tag = 0x5e4d0000n + this.#pings++;
    await this.send(...frames, ping(tag));
    await this.when(
      (fs) =>
        this.raw.ended ||
        fs.some((f) => f.type === FrameType.PING && f.flags & Flag.ACK && f.payload.readBigUInt64BE(0) === tag),
      `the ACK of PING ${tag} (or the close)`,
    );
  }

  get frames(): Frame[] {
    return this.reader.frames;
  }

  of(type: number, streamId?: number): Frame[] {
    return this.reader.of(type, streamId);
  }

  /** The server's GOAWAY, if it sent one. */
  get goaway(): Goaway | undefined {
    const f = this.reader.frames.find((x) => x.type === FrameType.GOAWAY);
    return f === undefined ? undefined : goawayOf(f);
  }

  /** The RST_STREAM codes the server sent, by stream. */
  get resets(): Map<number, number> {
    return new Map(this.of(FrameType.RST_STREAM).map((f) => [f.streamId, rstCodeOf(f)]));
  }

  /** Waits for `check(frames)` to be truthy, re-checked as bytes or the close arrive. */
  async when<T>(check: (frames: Frame[]) => T, what: string, timeout = 30_000): Promise<NonNullable<T>> {
    try {
      return await this.raw.when(() => check(this.reader.frames), what, timeout);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}; frames so far: ${describe(this.reader.frames)}; closed: ${this.raw.ended}`,
      );
    }
  }

  async waitForGoaway(what = "the server's GOAWAY", timeout = 30_000): Promise<Goaway> {
    await this.when(() => this.goaway, what, timeout);
    return this.goaway as Goaway;
  }

  async waitForClose(what = "the server to close the connection", timeout = 30_000): Promise<void> {
    await this.when(() => this.raw.ended, what, timeout);
  }

  close(): void {
    this.raw.close();
  }
}
