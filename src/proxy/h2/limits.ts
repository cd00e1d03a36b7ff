/**
 * What one HTTP/2 client connection may hold, in one place: a pure function
 * of the proxy config, so every limit reads and is tested here. nghttp2
 * enforces most of them; the rest are the session's own (window, idle).
 *
 * | limit                          | value                                   | why                                         |
 * |--------------------------------|-----------------------------------------|---------------------------------------------|
 * | SETTINGS_MAX_CONCURRENT_STREAMS | 100                                    | as HAProxy, nginx (128), Go (250): a client multiplexes, a stream never holds more than its window |
 * | SETTINGS_MAX_HEADER_LIST_SIZE  | `proxy.limits.headerBytes` + 32 a field | the same head as HTTP/1.1 (RFC 9113 counts 32 bytes a field) |
 * | header fields a request        | `proxy.limits.headers` + 4 pseudo       | the same count as HTTP/1.1                  |
 * | SETTINGS_INITIAL_WINDOW_SIZE   | 64 KiB − 1 (the default)                 | a stream's unread body held: ≤ 100 × 64 KiB |
 * | connection window              | 1 MiB                                   | uploads on several streams are not serialised by the default 64 KiB |
 * | SETTINGS_MAX_FRAME_SIZE        | 16 KiB (the default)                    |                                             |
 * | SETTINGS_HEADER_TABLE_SIZE     | 4 KiB (the default)                     | HPACK state a client can make us keep       |
 * | SETTINGS_ENABLE_PUSH           | off                                     | never pushed                                |
 * | session memory (nghttp2)       | 10 MB                                   | new streams refused above it                |
 * | SETTINGS entries a frame       | 32; unacknowledged PINGs 10             | Node's defaults; floods end the session      |
 * | invalid frames / refused streams | 100 / 100 a session                   | then the session is closed                  |
 * | streams the client cancels mid-exchange within 1 s of opening | burst 200, then 20/s (resets.ts); past it GOAWAY ENHANCE_YOUR_CALM and close | rapid reset (CVE-2023-44487): each may have cost a member a request |
 * | RST_STREAM from the client     | burst 1000, 33/s: nghttp2 ≥ 1.57's built-in token bucket (Node 20 has no option for it); GOAWAY INTERNAL_ERROR | the looser net under ours |
 * | streams holding a member call while the client takes none of their response | `proxy.connections` / 16 (at least 1; 8 by default); past it a stall is cut (RST_STREAM CANCEL) after 1 s instead of `timeouts.clientWrite`, and new streams get REFUSED_STREAM | a stalled stream holds a member connection: without it a few connections of 100 unread streams take a member's whole pool. Envoy's flow control backs the member up the same way (its cluster circuit breakers then cap everyone); HAProxy queues at a server's maxconn. Ours is per client connection, so the others keep the pool |
 * | a session without streams      | `proxy.timeouts.clientIdle`             | then GOAWAY, as an idle HTTP/1.1 connection; destroyed 1 s later if still open (server.ts) |
 */
import { constants, type ServerOptions, type Settings } from "node:http2";
import type { ProxyConfig } from "../../config.ts";
import type { ResetLimit } from "./resets.ts";

/** The limits of one client session. */
export interface H2Limits {
  /** Sent to the client in the first SETTINGS frame. */
  settings: Settings;
  /** The connection-level receive window (WINDOW_UPDATE on stream 0 at the start of a session). */
  connectionWindow: number;
  /** Milliseconds a session may have no open stream before it gets GOAWAY. */
  idleMs: number;
  /** Options of the http2 server (nghttp2 and Node's own accounting). */
  server: ServerOptions;
  /** Streams a client may cancel before their exchange is over (rapid reset). */
  resets: ResetLimit;
  /**
   * Streams that may hold a member call while the client takes none of their response, each for up to
   * `timeouts.clientWrite`; past `streams`, a stall lasts `graceMs` at most and new streams are refused.
   */
  stalled: { streams: number; graceMs: number };
}

/** RFC 9113 §6.5.2: each field counts its name, its value and 32 bytes. */
const fieldOverhead = 32;
const pseudoHeaders = 4;

export function h2Limits(config: ProxyConfig): H2Limits {
  const { limits, timeouts } = config;
  const settings: Settings = {
    maxConcurrentStreams: 100,
    maxHeaderListSize: limits.headerBytes + fieldOverhead * (limits.headers + pseudoHeaders),
    initialWindowSize: constants.DEFAULT_SETTINGS_INITIAL_WINDOW_SIZE,
    maxFrameSize: constants.DEFAULT_SETTINGS_MAX_FRAME_SIZE,
    headerTableSize: constants.DEFAULT_SETTINGS_HEADER_TABLE_SIZE,
    enablePush: false,
  };
  return {
    settings,
    connectionWindow: 1 << 20,
    // Twice the streams a client may have open at once, then below nghttp2's own 33/s (which fires second).
    resets: { burst: 200, perSecond: 20, minLifetimeMs: 1_000 },
    idleMs: timeouts.clientIdle,
    // A sixteenth of a member's connections: a handful of clients that stop reading leave most of the pool.
    stalled: { streams: Math.max(1, Math.floor(config.connections / 16)), graceMs: 1_000 },
    server: {
      settings,
      maxHeaderListPairs: limits.headers + pseudoHeaders,
      maxSessionMemory: 10,
      maxSettings: 32,
      maxOutstandingPings: 10,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      // A response head ringroute sends is one a member sent, within proxy.limits.responseHeaderBytes.
      maxSendHeaderBlockLength: limits.responseHeaderBytes + 1024,
    },
  };
}
