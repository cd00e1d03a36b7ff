/**
 * llhttp, the parser node:http uses, in the WebAssembly build undici ships.
 * Chosen over Node's own binding because its callbacks report byte offsets:
 * the engine learns exactly where a head ends and a message ends, so bodies
 * are passed on as slices of the received buffers (framing included) and
 * pipelined messages are split without copying. The parser pauses at the end
 * of every head and every message, so all proxy logic runs between
 * `execute()` calls, never inside the WebAssembly callbacks.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export const OK = 0;
export const PAUSED = 21;
export const PAUSED_UPGRADE = 22;
/** What a callback's -1 turns into: one of our own limits was hit. */
export const USER = 24;
const REQUEST = 1;
const RESPONSE = 2;

interface Exports {
  memory: WebAssembly.Memory;
  _initialize?: () => void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, len: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_resume(ptr: number): void;
  llhttp_get_error_pos(ptr: number): number;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_get_method(ptr: number): number;
  llhttp_get_http_major(ptr: number): number;
  llhttp_get_http_minor(ptr: number): number;
  llhttp_message_needs_eof(ptr: number): number;
}

/** llhttp's method numbers, in order (undici's constants.js METHODS). */
const methodTable: Record<string, number> = require("undici/lib/llhttp/constants.js").METHODS;
const methodNames: string[] = [];
for (const [name, id] of Object.entries(methodTable)) methodNames[id] = name;

/** The parser that is inside `llhttp_execute` right now; callbacks report to it. */
let current: Parser | undefined;
/** Where `current`'s input sits in WebAssembly memory, and which buffer and offset it came from. */
let inputPtr = 0;
let inputSize = 0;
let inputBuffer: Buffer = Buffer.alloc(0);
let inputBase = 0;

/** Buffer's own latin1 decoder: what `toString("latin1", …)` calls, minus its argument checks. */
interface LatinSlicing {
  latin1Slice(start: number, end: number): string;
}

const wasm = instantiate();

/** A view of the WebAssembly memory, made again only when the memory grows (its buffer changes). */
let view = new Uint8Array(wasm.memory.buffer);
function memoryView(): Uint8Array {
  if (view.buffer !== wasm.memory.buffer) view = new Uint8Array(wasm.memory.buffer);
  return view;
}

function instantiate(): Exports {
  const module = new WebAssembly.Module(require("undici/lib/llhttp/llhttp-wasm.js"));
  const slice = (at: number, len: number): string => {
    const start = at - inputPtr + inputBase;
    return (inputBuffer as unknown as LatinSlicing).latin1Slice(start, start + len);
  };
  const instance = new WebAssembly.Instance(module, {
    env: {
      wasm_on_message_begin: () => (current as Parser).begin(),
      wasm_on_url: (_p: number, at: number, len: number) => (current as Parser).url(slice(at, len), len),
      wasm_on_status: (_p: number, at: number, len: number) => (current as Parser).statusText(slice(at, len), len),
      wasm_on_header_field: (_p: number, at: number, len: number) => (current as Parser).field(slice(at, len), len),
      wasm_on_header_value: (_p: number, at: number, len: number) => (current as Parser).value(slice(at, len), len),
      wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number) =>
        (current as Parser).headersComplete(status, upgrade === 1, keepAlive === 1),
      wasm_on_body: (_p: number, at: number, len: number) => (current as Parser).body(at - inputPtr + inputBase, len),
      wasm_on_message_complete: () => (current as Parser).messageComplete(),
    },
  });
  const exports = instance.exports as unknown as Exports;
  exports._initialize?.();
  return exports;
}

/** Limits checked while a head is parsed; a callback returning -1 stops llhttp with USER. */
export interface HeadLimits {
  headers: number;
  headerBytes: number;
  url: number;
}

const unlimited: HeadLimits = { headers: Number.MAX_SAFE_INTEGER, headerBytes: Number.MAX_SAFE_INTEGER, url: 1 << 30 };

/**
 * One llhttp parser (requests or responses). `execute()` runs until the
 * input is used up, a head or message is complete (PAUSED), an upgrade
 * (PAUSED_UPGRADE), or an error; `pos` is where it stopped in the buffer.
 */
export class Parser {
  readonly #ptr: number;
  limits: HeadLimits;
  /**
   * The head parsed so far: target (requests), status text (responses), header names and values (latin1).
   * `names` and `values` are the same two arrays for every message, refilled in place (their length is set
   * when a head completes): read them while handling a head, copy what must outlive it. New arrays per
   * message cost about 300 bytes of garbage each (a backing store grown to 17 slots by the first push).
   */
  target = "";
  reason = "";
  readonly names: string[] = [];
  readonly values: string[] = [];
  /** Header lines of the current message so far (trailers included). */
  #fields = 0;
  status = 0;
  upgrade = false;
  keepAlive = false;
  /** Set by the head callback; cleared by whoever handles the head. */
  headReady = false;
  /** Set by the message-complete callback; cleared by whoever handles it. */
  done = false;
  /** Responses only: tell llhttp the coming response has no body (answer to HEAD). */
  skipBody = false;
  /** Which limit stopped the parser: "headers", "headerBytes" or "url". */
  exceeded: "headers" | "headerBytes" | "url" | undefined;
  /**
   * Collect decoded body spans (start and end offsets into the executed buffer, in pairs) in `spans`, for
   * the caller to take after `execute()` returns; off, the caller passes the raw bytes on, framing included.
   */
  decode = false;
  readonly spans: number[] = [];
  pos = 0;
  #headBytes = 0;
  #urlBytes = 0;
  /** The last head was a 1xx response's. */
  #informational = false;
  #lastWasValue = true;

  constructor(kind: "request" | "response", limits: HeadLimits = unlimited) {
    this.#ptr = wasm.llhttp_alloc(kind === "request" ? REQUEST : RESPONSE);
    this.limits = limits;
  }

  get method(): string {
    return methodNames[wasm.llhttp_get_method(this.#ptr)] ?? "GET";
  }

  get versionMajor(): number {
    return wasm.llhttp_get_http_major(this.#ptr);
  }

  get versionMinor(): number {
    return wasm.llhttp_get_http_minor(this.#ptr);
  }

  /** Whether a response without Content-Length or chunked framing ends at EOF. */
  get needsEof(): boolean {
    return wasm.llhttp_message_needs_eof(this.#ptr) === 1;
  }

  /** Parses `data` from `start`; returns llhttp's code (OK, PAUSED, PAUSED_UPGRADE or an error), `pos` set. */
  execute(data: Buffer, start: number): number {
    const len = data.length - start;
    if (len > inputSize) {
      if (inputSize !== 0) wasm.free(inputPtr);
      inputSize = Math.max(len, 65536);
      inputPtr = wasm.malloc(inputSize);
    }
    data.copy(memoryView(), inputPtr, start);
    const outer = current;
    const outerBuffer = inputBuffer;
    const outerBase = inputBase;
    current = this;
    inputBuffer = data;
    inputBase = start;
    const code = wasm.llhttp_execute(this.#ptr, inputPtr, len);
    this.pos = code === OK ? data.length : wasm.llhttp_get_error_pos(this.#ptr) - inputPtr + start;
    current = outer;
    inputBuffer = outerBuffer;
    inputBase = outerBase;
    if (code === PAUSED) wasm.llhttp_resume(this.#ptr);
    return code;
  }

  /** Tells the parser the stream ended; returns OK when that completes a message (close-delimited). */
  finish(): number {
    const outer = current;
    current = this;
    const code = wasm.llhttp_finish(this.#ptr);
    current = outer;
    if (code === PAUSED) wasm.llhttp_resume(this.#ptr);
    return code;
  }

  /** llhttp's reason for the last error. */
  errorReason(): string {
    const at = wasm.llhttp_get_error_reason(this.#ptr);
    if (at === 0) return "";
    const bytes = new Uint8Array(wasm.memory.buffer, at);
    return Buffer.from(bytes.subarray(0, bytes.indexOf(0))).toString("latin1");
  }

  free(): void {
    wasm.llhttp_free(this.#ptr);
  }

  begin(): number {
    this.target = "";
    this.reason = "";
    this.#fields = 0;
    // Informational responses and the final one share one head budget (as Go's transport counts them):
    // a member cannot stream 1xx heads without end.
    if (!this.#informational) this.#headBytes = 0;
    this.#informational = false;
    this.#urlBytes = 0;
    this.#lastWasValue = true;
    return 0;
  }

  url(text: string, len: number): number {
    this.target += text;
    this.#urlBytes += len;
    if (this.#urlBytes > this.limits.url) return this.#exceed("url");
    return this.#count(len);
  }

  statusText(text: string, len: number): number {
    this.reason += text;
    return this.#count(len);
  }

  field(text: string, len: number): number {
    if (this.#lastWasValue) {
      if (this.#fields >= this.limits.headers) return this.#exceed("headers");
      this.names[this.#fields] = text;
      this.values[this.#fields] = "";
      this.#fields++;
      this.#lastWasValue = false;
    } else {
      this.names[this.#fields - 1] += text;
    }
    return this.#count(len);
  }

  value(text: string, len: number): number {
    this.values[this.#fields - 1] += text;
    this.#lastWasValue = true;
    return this.#count(len);
  }

  headersComplete(status: number, upgrade: boolean, keepAlive: boolean): number {
    // Entries past this head's are the last message's. V8 keeps the backing store when an array is shortened
    // a little (it trims only a mostly unused one, or one cut to 0); trailers, if any, are appended after.
    if (this.names.length !== this.#fields) {
      this.names.length = this.#fields;
      this.values.length = this.#fields;
    }
    this.status = status;
    this.#informational = status >= 100 && status < 200;
    this.upgrade = upgrade;
    this.keepAlive = keepAlive;
    this.headReady = true;
    // 1: no body follows (a response to HEAD); the message completes right away and the head is handled then.
    if (this.skipBody) return 1;
    return PAUSED;
  }

  body(start: number, len: number): number {
    if (this.decode) this.spans.push(start, start + len);
    return 0;
  }

  messageComplete(): number {
    this.done = true;
    return PAUSED;
  }

  #count(len: number): number {
    this.#headBytes += len;
    return this.#headBytes > this.limits.headerBytes ? this.#exceed("headerBytes") : 0;
  }

  #exceed(which: "headers" | "headerBytes" | "url"): number {
    this.exceeded = which;
    return -1;
  }
}
