/**
 * Hostile-input tooling: a client that sends exact bytes on a raw socket and
 * keeps every byte that comes back, a recording backend that keeps every byte
 * each of its connections received and answers with scripted raw responses,
 * and llhttp (Node's own binding, strict mode) to split byte streams into
 * messages. Nothing here parses HTTP by hand: a stream llhttp rejects is
 * reported as an error, never read leniently.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Cluster } from "../../src/cluster.ts";
import { type Config, defaultConfig, type KeyConfig, type ProxyConfig } from "../../src/config.ts";
import type {
  AccessRecord,
  ClientFailure,
  ClientProtocol,
  ProxyObserver,
  UpstreamFailure,
} from "../../src/proxy/observer.ts";
import { createProxy, type RoutingProxy, type TlsMaterial } from "../../src/proxy/server.ts";
import type { Clock } from "../../src/utils/clock.ts";
import { TestSource } from "./backends.ts";
import { until, within } from "./until.ts";

// ---------------------------------------------------------------------------
// llhttp through Node's binding

interface Binding {
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
  };
  allMethods: string[];
}

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseFailure;
  finish(): undefined | ParseFailure;
  close(): void;
  [callback: number]: unknown;
}

interface ParseFailure extends Error {
  code: string;
  reason: string;
  bytesParsed: number;
}

let binding: Binding | undefined;
function llhttp(): Binding {
  if (binding === undefined) {
    // The binding is the exact parser node:http runs; reaching it warns once (DEP0111), which says nothing here.
    const quiet = process.noDeprecation;
    process.noDeprecation = true;
    binding = (process as unknown as { binding(name: string): Binding }).binding("http_parser");
    process.noDeprecation = quiet;
  }
  return binding;
}

/** One HTTP/1.1 message as llhttp read it. */
export interface Message {
  /** Requests only. */
  method: string;
  /** Requests only: the request target as sent. */
  url: string;
  /** Responses only. */
  status: number;
  reason: string;
  version: string;
  /** Field names and values in order, as received (`[name, value, name, value…]`). */
  rawHeaders: string[];
  /** The body with its framing removed (chunked decoded). */
  body: Buffer;
  /** Whether the message asked for an Upgrade (or was CONNECT / a 101). */
  upgrade: boolean;
  keepAlive: boolean;
  /** Whether the whole message arrived. */
  complete: boolean;
}

/** Header values of `name` (case-insensitive), in order. */
export function headerValues(message: Pick<Message, "rawHeaders">, name: string): string[] {
  const lower = name.toLowerCase();
  const values: string[] = [];
  for (let i = 0; i < message.rawHeaders.length; i += 2) {
    if ((message.rawHeaders[i] as string).toLowerCase() === lower) values.push(message.rawHeaders[i + 1] as string);
  }
  return values;
}

/** The single value of `name`, undefined if absent; throws if repeated. */
export function header(message: Pick<Message, "rawHeaders">, name: string): string | undefined {
  const values = headerValues(message, name);
  if (values.length > 1) throw new Error(`${name} appears ${values.length} times`);
  return values[0];
}

/** What a byte stream parsed into. */
export interface Parsed {
  messages: Message[];
  /** llhttp's error code and reason if the stream stopped parsing (`HPE_…: reason`). */
  error: string | undefined;
  /** Bytes after an Upgrade/CONNECT message or an error, not parsed as HTTP. */
  rest: Buffer;
}

/**
 * An incremental strict llhttp parser. For responses, pass the methods of
 * the requests they answer (in order) so that responses to HEAD are read
 * without a body.
 */
export class MessageParser {
  readonly messages: Message[] = [];
  error: string | undefined;
  rest: Buffer = Buffer.alloc(0);
  readonly #parser: NativeParser;
  readonly #kind: "request" | "response";
  readonly #methods: string[];
  #current: Message | undefined;
  #body: Buffer[] = [];
  #stopped = false;

  constructor(kind: "request" | "response", methods: string[] = []) {
    const { HTTPParser, allMethods } = llhttp();
    this.#kind = kind;
    this.#methods = [...methods];
    const parser = new HTTPParser();
    parser.initialize(kind === "request" ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, 0);
    let pending: string[] = [];
    let pendingUrl = "";
    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      // Many or long header fields come in several flushes before the head completes.
      pending = pending.concat(headers);
      pendingUrl += url;
    };
    parser[HTTPParser.kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: string[] | undefined,
      method: number | undefined,
      url: string | undefined,
      status: number | undefined,
      reason: string | undefined,
      upgrade: boolean,
      keepAlive: boolean,
    ) => {
      const message: Message = {
        method: method === undefined ? "" : (allMethods[method] ?? ""),
        url: pendingUrl + (url ?? ""),
        status: status ?? 0,
        reason: reason ?? "",
        version: `${major}.${minor}`,
        rawHeaders: headers === undefined ? pending : pending.concat(headers),
        body: Buffer.alloc(0),
        upgrade,
        keepAlive,
        complete: false,
      };
      pending = [];
      pendingUrl = "";
      this.#current = message;
      this.#body = [];
      this.messages.push(message);
      if (this.#kind === "response" && message.status >= 200) {
        const answered = this.#methods.shift();
        if (answered === "HEAD") return 1; // no body follows
      }
      return 0;
    };
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
      this.#body.push(Buffer.from(chunk));
      if (this.#current !== undefined) this.#current.body = Buffer.concat(this.#body);
    };
    parser[HTTPParser.kOnMessageComplete] = () => {
      if (this.#current === undefined) return;
      this.#current.body = Buffer.concat(this.#body);
      this.#current.complete = true;
      this.#current = undefined;
    };
    parser[HTTPParser.kOnExecute] = () => {};
    this.#parser = parser;
  }

  /** Feeds bytes; after an error or an upgrade, the rest is kept unparsed. */
  push(data: Buffer): void {
    if (this.#stopped) {
      this.rest = Buffer.concat([this.rest, data]);
      return;
    }
    const result = this.#parser.execute(data);
    if (typeof result !== "number") {
      this.#stop(result, data.subarray(result.bytesParsed));
      return;
    }
    const last = this.messages.at(-1);
    if (last?.upgrade && last.complete) {
      // After an Upgrade (or a 101) the bytes are the new protocol's, not HTTP.
      this.#stopped = true;
      this.rest = Buffer.from(data.subarray(result));
    }
  }

  /** The peer closed: completes a close-delimited body, or reports a truncated message. */
  end(): void {
    if (this.#stopped) return;
    const result = this.#parser.finish();
    if (result !== undefined) this.#stop(result, Buffer.alloc(0));
  }

  #stop(failure: ParseFailure, rest: Buffer): void {
    this.#stopped = true;
    this.error = `${failure.code}: ${failure.reason}`;
    this.rest = Buffer.from(rest);
  }

  parsed(): Parsed {
    return { messages: this.messages, error: this.error, rest: this.rest };
  }
}

/** Parses a whole byte stream (`ended`: the peer closed after it). */
export function parse(
  kind: "request" | "response",
  bytes: Buffer,
  options: { methods?: string[]; ended?: boolean } = {},
) {
  const parser = new MessageParser(kind, options.methods);
  parser.push(bytes);
  if (options.ended) parser.end();
  return parser.parsed();
}

/** The JSON body of a response (throws with the body if it is not JSON). */
// biome-ignore lint/suspicious/noExplicitAny: test convenience for JSON bodies
export function json(message: Message): any {
  try {
    return JSON.parse(message.body.toString("utf8"));
  } catch {
    throw new Error(`not JSON: ${JSON.stringify(message.body.toString("latin1"))}`);
  }
}

// ---------------------------------------------------------------------------
// The raw client

/** A client on a raw socket: sends exactly what it is given, keeps all it receives. */
export class RawClient {
  readonly socket: Socket;
  #chunks: Buffer[] = [];
  /** The server sent FIN (or the socket closed). */
  ended = false;
  /** The socket is fully closed. */
  closed = false;
  /** The connection was reset (ECONNRESET/EPIPE) rather than closed cleanly. */
  reset = false;

  readonly #waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    const changed = () => {
      for (const waiter of this.#waiters) waiter();
    };
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      changed();
    });
    socket.on("end", () => {
      this.ended = true;
      changed();
    });
    socket.on("error", () => (this.reset = true));
    socket.on("close", () => {
      this.ended = true;
      this.closed = true;
      changed();
    });
  }

  /** Resolves with `check()`'s first truthy value, checked whenever bytes or the end arrive; rejects after `timeout`. */
  async when<T>(check: () => T, what: string, timeout = 30_000): Promise<NonNullable<T>> {
    let waiter: (() => void) | undefined;
    try {
      return await within(
        new Promise<NonNullable<T>>((resolve, reject) => {
          waiter = () => {
            try {
              const value = check();
              if (value) resolve(value as NonNullable<T>);
            } catch (error) {
              reject(error);
            }
          };
          this.#waiters.add(waiter);
          waiter();
        }),
        { what, timeout },
      );
    } finally {
      if (waiter !== undefined) this.#waiters.delete(waiter);
    }
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = tcpConnect({ port, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      }),
      { what: `a connection to 127.0.0.1:${port}` },
    );
    return new RawClient(socket);
  }

  /** A client on a TLS connection (any certificate accepted), offering `alpn` (e.g. ["h2"]). */
  static async connectTls(port: number, alpn: string[] = []): Promise<RawClient> {
    const socket = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: alpn });
    socket.setNoDelay(true);
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      }),
      { what: `a TLS connection to 127.0.0.1:${port}` },
    );
    return new RawClient(socket);
  }

  /** Sends bytes as one write (a string is taken as latin1: one char, one byte). */
  async send(data: string | Buffer): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    await within(
      new Promise<void>((resolve, reject) => this.socket.write(bytes, (error) => (error ? reject(error) : resolve()))),
      { what: "the client's write to be flushed" },
    );
  }

  /** Sends the client's FIN (half-close); it can still read. */
  finish(): void {
    this.socket.end();
  }

  get received(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  get text(): string {
    return this.received.toString("latin1");
  }

  /** What arrived, shortened for assertion messages. */
  get preview(): string {
    const text = this.text;
    return text.length <= 600 ? text : `${text.slice(0, 300)} …(${text.length} bytes)… ${text.slice(-300)}`;
  }

  /** The responses received so far (pass the request methods in order so HEAD responses parse right). */
  responses(methods: string[] = []): Parsed {
    return parse("response", this.received, { methods, ended: this.ended });
  }

  /** Waits until `count` complete responses arrived. */
  async waitForResponses(count: number, methods: string[] = [], timeout = 30_000): Promise<Message[]> {
    await until(() => this.responses(methods).messages.filter((m) => m.complete && m.status >= 200).length >= count, {
      what: `${count} complete response(s); got so far: ${JSON.stringify(this.preview)}`,
      timeout,
    });
    return this.responses(methods).messages.filter((m) => m.status >= 200);
  }

  /** Waits until the server closed the connection (FIN or reset). */
  async waitForEnd(what = "the server to close the connection", timeout = 30_000): Promise<void> {
    await until(() => this.ended, { what, timeout });
  }

  /** Waits until at least `bytes` bytes arrived. */
  async waitForBytes(bytes: number, timeout = 30_000): Promise<void> {
    await until(() => this.received.length >= bytes, { what: `${bytes} bytes from the server`, timeout });
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// The recording backend

/** One connection the backend accepted: every byte it got, and the requests they parsed into. */
export class BackendConnection {
  readonly socket: Socket;
  readonly #chunks: Buffer[] = [];
  readonly parser = new MessageParser("request");
  closed = false;
  #answered = 0;
  #queue: Promise<void> = Promise.resolve();
  #tunnel: ((chunk: Buffer) => void) | undefined;

  constructor(
    socket: Socket,
    readonly backend: RecordingBackend,
  ) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      backend.bytesSeen += chunk.length;
      if (this.#tunnel !== undefined) {
        this.#tunnel(chunk);
        return;
      }
      this.parser.push(chunk);
      this.#answer();
    });
    socket.on("end", () => {
      this.parser.end();
      socket.end();
    });
    socket.on("error", () => {});
    socket.on("close", () => (this.closed = true));
  }

  /**
   * After a 101: every later byte (and any that came with the Upgrade's
   * head) goes to `receive` instead of the HTTP parser; all are still recorded.
   */
  tunnel(receive: (chunk: Buffer) => void): void {
    this.#tunnel = receive;
    if (this.parser.rest.length > 0) receive(this.parser.rest);
  }

  /** Every byte received on this connection. */
  get bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  get requests(): Message[] {
    return this.parser.messages;
  }

  /** Answers each request once its head arrived (or, for scripts that want it, once complete), one at a time. */
  #answer(): void {
    const requests = this.parser.messages;
    while (this.#answered < requests.length) {
      const request = requests[this.#answered] as Message;
      const script = this.backend.script;
      if (!request.complete && !script.early) break;
      this.#answered++;
      this.#queue = this.#queue.then(async () => {
        if (this.socket.destroyed) return;
        await script.answer(request, this);
      });
    }
  }
}

/** How the backend answers one request. */
export interface Script {
  /** Answer once the head arrived instead of waiting for the whole request. */
  early?: boolean;
  answer(request: Message, connection: BackendConnection): void | Promise<void>;
}

/** A response head: status line and the given fields, in order. */
export function head(status: number, reason: string, fields: [string, string][]): string {
  return `HTTP/1.1 ${status} ${reason}\r\n${fields.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
}

/** A complete response with Content-Length. */
export function fixed(status: number, body: string, fields: [string, string][] = []): string {
  return (
    head(status, status === 200 ? "OK" : "Status", [
      ...fields,
      ["Content-Length", String(Buffer.byteLength(body, "latin1"))],
    ]) + body
  );
}

/** Scripted answers; each takes what it needs from the request. */
export const scripts = {
  /** A fixed 200 whose body names the backend and the request target. */
  echo(): Script {
    return {
      answer(request, c) {
        c.socket.write(
          fixed(200, `${c.backend.name} ${request.method} ${request.url}`, [["Content-Type", "text/plain"]]),
        );
      },
    };
  },
  /** The same raw bytes for every request. */
  raw(bytes: string | ((request: Message) => string)): Script {
    return {
      answer(request, c) {
        c.socket.write(Buffer.from(typeof bytes === "string" ? bytes : bytes(request), "latin1"));
      },
    };
  },
  /** Writes `pieces` one by one, each after the previous one's promise (the test drives the pace). */
  slow(pieces: string[], gate: (index: number) => Promise<void>): Script {
    return {
      async answer(_request, c) {
        for (const [i, piece] of pieces.entries()) {
          await gate(i);
          if (c.socket.destroyed) return;
          c.socket.write(Buffer.from(piece, "latin1"));
        }
      },
    };
  },
  /** A chunked 200 with these chunks. */
  chunked(chunks: string[]): Script {
    const body = chunks.map((c) => `${Buffer.byteLength(c, "latin1").toString(16)}\r\n${c}\r\n`).join("");
    return scripts.raw(`${head(200, "OK", [["Transfer-Encoding", "chunked"]])}${body}0\r\n\r\n`);
  },
  /** A 200 without framing: the body ends when the backend closes. */
  closeDelimited(body: string): Script {
    return {
      answer(_request, c) {
        c.socket.end(Buffer.from(`${head(200, "OK", [["Connection", "close"]])}${body}`, "latin1"), () =>
          c.socket.destroy(),
        );
      },
    };
  },
  /** Sends a response head promising a body, then resets the connection. */
  resetAfterHeaders(): Script {
    return {
      answer(_request, c) {
        c.socket.write(head(200, "OK", [["Content-Length", "1000"]]), () => c.socket.resetAndDestroy());
      },
    };
  },
  /** Answers 101 and then echoes every byte back, prefixed with "echo:". */
  switching(protocol: string): Script {
    return {
      answer(_request, c) {
        c.socket.write(
          head(101, "Switching Protocols", [
            ["Connection", "Upgrade"],
            ["Upgrade", protocol],
          ]),
        );
        c.tunnel((chunk) => c.socket.write(Buffer.concat([Buffer.from("echo:"), chunk])));
      },
    };
  },
  /** Never answers. */
  hang(): Script {
    return { early: true, answer() {} };
  },
};

/** A raw node:net backend that records what each connection received. */
export class RecordingBackend {
  readonly connections: BackendConnection[] = [];
  script: Script = scripts.echo();
  /** Bytes received over all connections. */
  bytesSeen = 0;
  url = "";
  port = 0;
  readonly #server: Server;

  private constructor(readonly name: string) {
    this.#server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.setNoDelay(true);
      this.connections.push(new BackendConnection(socket, this));
    });
  }

  static async start(name: string): Promise<RecordingBackend> {
    const backend = new RecordingBackend(name);
    await new Promise<void>((resolve) => backend.#server.listen(0, "127.0.0.1", resolve));
    const address = backend.#server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    backend.port = address.port;
    backend.url = `http://127.0.0.1:${address.port}`;
    return backend;
  }

  /** Every request received, over all connections, in arrival order per connection. */
  get requests(): Message[] {
    return this.connections.flatMap((c) => c.requests);
  }

  /** Connections still open. */
  get open(): number {
    return this.connections.filter((c) => !c.closed).length;
  }

  async waitForRequests(count: number, timeout = 30_000): Promise<Message[]> {
    await until(() => this.requests.length >= count, {
      what: `${count} request(s) at backend ${this.name}, got ${this.requests.length}`,
      timeout,
    });
    return this.requests;
  }

  /** Parse errors on any connection: what the backend could not read as strict HTTP. */
  get errors(): string[] {
    return this.connections.flatMap((c) => (c.parser.error === undefined ? [] : [c.parser.error]));
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------
// A proxy in front of recording backends

export interface RawHarness {
  backends: RecordingBackend[];
  backend(name: string): RecordingBackend;
  cluster: Cluster;
  source: TestSource;
  proxy: RoutingProxy;
  port: number;
  connect(): Promise<RawClient>;
  close(): Promise<void>;
}

export interface RawHarnessOptions {
  key?: Partial<KeyConfig>;
  proxy?: (config: ProxyConfig) => void;
  /** Member URL for each backend (default its origin), e.g. to add a path prefix. */
  memberUrl?: (backend: RecordingBackend) => string;
  /** Receives the proxy's reports (metrics, access records). */
  observer?: ProxyObserver;
  /** The proxy's clock (a ManualClock for rules about time). */
  clock?: Clock;
  /** HTTPS on the listener. */
  tls?: TlsMaterial;
  /** Whether clients may speak HTTP/2 (default: on, as the config's default). */
  http2?: boolean;
}

/** Recording backends `names` behind a proxy routed by a ring of them. */
export async function startRawProxy(names: string[], options: RawHarnessOptions = {}): Promise<RawHarness> {
  const backends = await Promise.all(names.map((name) => RecordingBackend.start(name)));
  const source = new TestSource(backends.map((b) => ({ name: b.name, url: options.memberUrl?.(b) ?? b.url })));
  const cluster = new Cluster({ source });
  await cluster.start();
  const config: Config = defaultConfig();
  Object.assign(config.key, options.key);
  options.proxy?.(config.proxy);
  const proxy = createProxy({
    cluster,
    config: { key: config.key, proxy: config.proxy, http2: options.http2 ?? config.http2 },
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  const { port } = await proxy.listen(0, "127.0.0.1");
  const clients: RawClient[] = [];
  return {
    backends,
    backend(name) {
      const found = backends.find((b) => b.name === name);
      if (found === undefined) throw new Error(`no backend named ${name}`);
      return found;
    },
    cluster,
    source,
    proxy,
    port,
    async connect() {
      const client = await RawClient.connect(port);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await within(proxy.close(1000), { what: "the proxy to close" });
      await Promise.all(backends.map((b) => b.close()));
      await cluster.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// What the proxy reported

/** A ProxyObserver that keeps every report, for assertions on who was blamed. */
export class Reports implements ProxyObserver {
  readonly requests: { member: string; method: string; status: number | "truncated" }[] = [];
  /** The protocol of each request in `requests`, in the same order. */
  readonly protocols: ClientProtocol[] = [];
  readonly upstreamErrors: { member: string; reason: UpstreamFailure }[] = [];
  readonly clientErrors: ClientFailure[] = [];
  readonly queueTimeouts: string[] = [];
  readonly ejections: string[] = [];
  readonly records: AccessRecord[] = [];
  failovers = 0;
  /** Request heads read (routed, waiting or refused). */
  started = 0;

  requestStarted(): void {
    this.started++;
  }
  request(
    member: string,
    method: string,
    status: number | "truncated",
    _seconds = 0,
    protocol: ClientProtocol = "http/1.1",
  ): void {
    this.requests.push({ member, method, status });
    this.protocols.push(protocol);
  }
  upstreamError(member: string, reason: UpstreamFailure): void {
    this.upstreamErrors.push({ member, reason });
  }
  clientError(reason: ClientFailure): void {
    this.clientErrors.push(reason);
  }
  queueTimeout(member: string): void {
    this.queueTimeouts.push(member);
  }
  failover(): void {
    this.failovers++;
  }
  ejection(member: string): void {
    this.ejections.push(member);
  }
  access(record: AccessRecord): void {
    this.records.push(record);
  }
}
