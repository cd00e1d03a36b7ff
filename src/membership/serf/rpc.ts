/**
 * A client for the Serf agent's RPC protocol (the one `serf members` and
 * `serf monitor` use): a TCP connection carrying msgpack objects back to
 * back. Each request is a header {Command, Seq} followed by a body; each
 * response is a header {Seq, Error}, followed by a body for the commands
 * that return one (and only when Error is empty). A `stream` request is
 * answered once with a bare header, then with a header and an event record
 * for every event until `stop` or the connection closes.
 */
import { connect, type Socket } from "node:net";
import { Decoder, encode } from "@msgpack/msgpack";
import { SerfRpcError } from "../../errors/serf-rpc-error.ts";
import { SourceError } from "../../errors/source-error.ts";
import { type Clock, systemClock } from "../../utils/clock.ts";
import { hostPort } from "../../utils/fields.ts";

export { SerfRpcError };

/** A member as the agent describes it. `Addr` is left out: ringroute takes addresses from tags. */
export interface SerfMember {
  Name: string;
  Port: number;
  Tags: Record<string, string>;
  /** "alive", "leaving", "left", "failed" (or "none" for a member Serf knows nothing about yet). */
  Status: string;
}

/** One event from a `stream`: member-join, member-leave, member-failed, member-update, member-reap. */
export interface SerfMemberEvent {
  Event: string;
  Members: SerfMember[];
}

/** The member events ringroute subscribes to. */
export const memberEventTypes = "member-join,member-leave,member-failed,member-update,member-reap";

export interface SerfRpcOptions {
  /** host:port of the agent's RPC listener (`-rpc-addr`), e.g. "127.0.0.1:7373" or "[::1]:7373". */
  address: string;
  /** The agent's `rpc_auth` key; sent right after the handshake when set. */
  authKey?: string | undefined;
  /** Milliseconds to connect and for each request to be answered. */
  timeout?: number;
  /** Runs those deadlines; default the system clock. */
  clock?: Clock;
}

interface Pending {
  command: string;
  hasBody: boolean;
  resolve: (body: unknown) => void;
  reject: (error: Error) => void;
  cancelTimer: () => void;
}

/** Commands whose successful answer carries a body after the header. */
const commandsWithBody = new Set(["members", "members-filtered", "stats", "join", "force-leave", "get-coordinate"]);

export class SerfRpcClient {
  readonly address: string;
  /** Settles when the connection is gone, with the reason (never rejects). */
  readonly closed: Promise<Error>;
  readonly #socket: Socket;
  readonly #timeout: number;
  readonly #clock: Clock;
  #seq = 0;
  #pending = new Map<number, Pending>();
  #streams = new Map<number, (event: SerfMemberEvent) => void>();
  #onClosed!: (error: Error) => void;
  #isClosed = false;

  private constructor(socket: Socket, address: string, timeout: number, clock: Clock) {
    this.#socket = socket;
    this.address = address;
    this.#timeout = timeout;
    this.#clock = clock;
    this.closed = new Promise((resolve) => {
      this.#onClosed = resolve;
    });
    socket.on("error", (error) => this.#close(error));
    socket.on("close", () => this.#close(new SourceError("serf", `serf agent at ${address} closed the connection`)));
    void this.#readLoop();
  }

  /** Connects, performs the handshake and, with a key, authenticates. */
  static async connect(options: SerfRpcOptions): Promise<SerfRpcClient> {
    const { host, port } = hostPort(options.address, "address", { dial: true });
    const timeout = options.timeout ?? 5000;
    const clock = options.clock ?? systemClock;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host, port });
      const cancelTimer = clock.setTimer(
        () => socket.destroy(new SourceError("serf", `connecting to serf agent at ${options.address} timed out`)),
        timeout,
      );
      socket.once("connect", () => {
        cancelTimer();
        socket.removeListener("error", reject);
        resolve(socket);
      });
      socket.once("error", (error) => {
        cancelTimer();
        reject(error);
      });
    });
    socket.setNoDelay(true);
    const client = new SerfRpcClient(socket, options.address, timeout, clock);
    try {
      await client.request("handshake", { Version: 1 });
      if (options.authKey) await client.request("auth", { AuthKey: options.authKey });
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Members whose tags, status and name match the agent-side regexes (anchored by Serf); empty means any. */
  async membersFiltered(filter: { Tags?: Record<string, string>; Status?: string; Name?: string } = {}) {
    const body = (await this.request("members-filtered", {
      Tags: filter.Tags ?? {},
      Status: filter.Status ?? "",
      Name: filter.Name ?? "",
    })) as { Members?: unknown[] };
    return (body.Members ?? []).map(toMember);
  }

  /** Subscribes to events; resolves with the stream's seq (for `stop`) once the agent accepted it. */
  async stream(types: string, onEvent: (event: SerfMemberEvent) => void): Promise<number> {
    const seq = this.#seq++;
    // Registered first: the first event may follow the agent's answer in the same packet.
    this.#streams.set(seq, onEvent);
    try {
      await this.#send("stream", seq, { Type: types }, false);
    } catch (error) {
      this.#streams.delete(seq);
      throw error;
    }
    return seq;
  }

  async stop(streamSeq: number): Promise<void> {
    await this.request("stop", { Stop: streamSeq });
    this.#streams.delete(streamSeq);
  }

  /** Sends one command and resolves with its body (undefined for header-only answers). */
  request(command: string, body: unknown): Promise<unknown> {
    return this.#send(command, this.#seq++, body, commandsWithBody.has(command));
  }

  close(): void {
    this.#socket.destroy();
    this.#close(new SourceError("serf", "closed by client"));
  }

  #send(command: string, seq: number, body: unknown, hasBody: boolean): Promise<unknown> {
    if (this.#isClosed) {
      return Promise.reject(new SourceError("serf", `serf agent at ${this.address}: connection closed`));
    }
    return new Promise((resolve, reject) => {
      const cancelTimer = this.#clock.setTimer(() => {
        this.#pending.delete(seq);
        reject(
          new SourceError("serf", `serf agent at ${this.address} did not answer ${command} within ${this.#timeout} ms`),
        );
        this.#socket.destroy();
      }, this.#timeout);
      this.#pending.set(seq, { command, hasBody, resolve, reject, cancelTimer });
      this.#socket.write(Buffer.concat([encode({ Command: command, Seq: seq }), encode(body)]));
    });
  }

  async #readLoop(): Promise<void> {
    // The answer to a header decides whether a body follows; this remembers who it belongs to.
    let awaitingBody: ((body: unknown) => void) | undefined;
    try {
      for await (const object of new Decoder().decodeStream(this.#socket)) {
        if (awaitingBody) {
          const deliver = awaitingBody;
          awaitingBody = undefined;
          deliver(object);
          continue;
        }
        const header = object as { Seq?: number | bigint; Error?: string };
        const seq = Number(header.Seq);
        const error = header.Error ?? "";
        const pending = this.#pending.get(seq);
        if (pending) {
          this.#pending.delete(seq);
          pending.cancelTimer();
          if (error !== "") pending.reject(new SerfRpcError(this.address, pending.command, error));
          else if (pending.hasBody) awaitingBody = pending.resolve;
          else pending.resolve(undefined);
          continue;
        }
        const onEvent = this.#streams.get(seq);
        if (onEvent && error === "") {
          awaitingBody = (record) => {
            const r = record as { Event?: string; Members?: unknown[] };
            if (typeof r.Event === "string" && Array.isArray(r.Members)) {
              onEvent({ Event: r.Event, Members: r.Members.map(toMember) });
            }
          };
          continue;
        }
        throw new SourceError("serf", `serf agent at ${this.address} sent an answer to unknown request ${seq}`);
      }
      this.#close(new SourceError("serf", `serf agent at ${this.address} closed the connection`));
    } catch (error) {
      this.#socket.destroy();
      this.#close(error as Error);
    }
  }

  #close(error: Error): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const pending of this.#pending.values()) {
      pending.cancelTimer();
      pending.reject(error);
    }
    this.#pending.clear();
    this.#streams.clear();
    this.#onClosed(error);
  }
}

function toMember(raw: unknown): SerfMember {
  const m = (raw ?? {}) as Record<string, unknown>;
  const tags: Record<string, string> = {};
  if (typeof m.Tags === "object" && m.Tags !== null) {
    for (const [k, v] of Object.entries(m.Tags)) tags[k] = String(v);
  }
  return { Name: String(m.Name ?? ""), Port: Number(m.Port ?? 0), Tags: tags, Status: String(m.Status ?? "none") };
}
