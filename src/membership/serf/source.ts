import { type Clock, systemClock } from "../../utils/clock.ts";
import { type Logger, silentLogger } from "../../utils/logger.ts";
import { memberUrlProblem } from "../member-url.ts";
import { withProtocol } from "../protocol.ts";
import type { Member, MemberState, MembershipSource, SnapshotSink } from "../source.ts";
import { memberEventTypes, type SerfMember, type SerfMemberEvent, SerfRpcClient } from "./rpc.ts";
import { type TagMatch, tagsMatch } from "./tags.ts";

/** How ringroute follows a Serf cluster through a local agent. */
export interface SerfSourceOptions {
  /** The agent's RPC address (`-rpc-addr`). */
  rpc: string;
  /** The agent's `rpc_auth` key, if it has one. */
  authKey?: string | undefined;
  /**
   * Tag → regular expression a member's tag must match to be in the ring,
   * like libring's WatchTags: JavaScript syntax, unanchored (write
   * `^active$` for an exact match); a missing tag is matched as "". A member
   * whose tag stops matching leaves the ring: the way to drain a node.
   */
  tags: Record<string, string>;
  /** `all` watched tags must match (missing = ""), or `any` one present tag (libring's rule); see ./tags.ts. */
  tagMatch: TagMatch;
  /** The tag holding a member's address: `host:port` or a full URL. */
  urlTag: string;
  /** Scheme put in front of a `host:port` tag value. */
  urlScheme: string;
  /** First and longest wait, in milliseconds, between attempts to reach the agent (doubling, with jitter). */
  reconnectMin: number;
  reconnectMax: number;
  /** Milliseconds to gather a burst of events into one snapshot (one join, one ring). */
  coalesce: number;
  /** Milliseconds to connect and for each RPC answer. */
  timeout: number;
  /** How the proxy talks to every member of this source: "h2c" for gRPC members; absent: HTTP/1.1. */
  protocol?: "h1" | "h2c";
}

export function defaultSerfSourceOptions(): SerfSourceOptions {
  return {
    rpc: "127.0.0.1:7373",
    authKey: undefined,
    tags: {},
    tagMatch: "all",
    urlTag: "http",
    urlScheme: "http",
    reconnectMin: 200,
    reconnectMax: 5000,
    coalesce: 20,
    timeout: 5000,
  };
}

/**
 * Serf status → member state. "leaving" counts as left: the member has
 * announced it is going, so its partitions move while it still answers.
 * "none" (not yet known) counts as failed.
 */
export function memberState(status: string): MemberState {
  if (status === "alive") return "alive";
  if (status === "leaving" || status === "left") return "left";
  return "failed";
}

/**
 * Members from a Serf agent over its RPC: `members-filtered` for the whole
 * list, then a `stream` of member events applied to that list. Every change
 * is reported as a whole snapshot, built after a short coalescing window.
 *
 * When the agent cannot be reached the last view stands: the source reports
 * down, retries with backoff, and resyncs from `members-filtered` once back.
 * An agent that answers but knows only itself after we knew a cluster (it
 * restarted and has not rejoined yet) is not believed until it learns more.
 */
export class SerfSource implements MembershipSource {
  readonly kind = "serf";
  readonly options: Readonly<SerfSourceOptions>;
  readonly #filters: [string, RegExp][];
  readonly #clock: Clock;
  readonly #logger: Logger;
  #sink: SnapshotSink | undefined;
  #client: SerfRpcClient | undefined;
  /** The agent's member list (all statuses, unfiltered) as of the last sync plus events since. */
  #view = new Map<string, SerfMember>();
  /** Whether #view is complete for the current connection. */
  #synced = false;
  /** Whether we have reported a view with more than one member: then an agent that knows only itself is suspect. */
  #knewCluster = false;
  #holding = false;
  #up = false;
  #backoff: number;
  #cancelRetry: (() => void) | undefined;
  #cancelFlush: (() => void) | undefined;
  /** Members already logged for having no usable URL tag (name → tag value), to log each once. */
  #unusable = new Map<string, string>();
  #stopped = true;

  constructor(options: Partial<SerfSourceOptions> & { clock?: Clock; logger?: Logger } = {}) {
    const { clock, logger, ...rest } = options;
    this.options = Object.freeze({
      ...defaultSerfSourceOptions(),
      ...(Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<SerfSourceOptions>),
    });
    this.#filters = Object.entries(this.options.tags).map(([tag, pattern]) => [tag, new RegExp(pattern)]);
    this.#backoff = this.options.reconnectMin;
    this.#clock = clock ?? systemClock;
    this.#logger = logger ?? silentLogger;
  }

  /** Resolves after the first attempt to reach the agent, successful or not (it keeps retrying). */
  async start(sink: SnapshotSink): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#sink = sink;
    await this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelRetry?.();
    this.#cancelFlush?.();
    this.#cancelRetry = undefined;
    this.#cancelFlush = undefined;
    this.#client?.close();
    this.#client = undefined;
  }

  async #connect(): Promise<void> {
    this.#cancelRetry = undefined;
    let client: SerfRpcClient | undefined;
    try {
      client = await SerfRpcClient.connect({
        address: this.options.rpc,
        authKey: this.options.authKey,
        timeout: this.options.timeout,
        clock: this.#clock,
      });
      if (this.#stopped) {
        client.close();
        return;
      }
      this.#client = client;
      await this.#resync(client);
    } catch (error) {
      client?.close();
      this.#client = undefined;
      this.#synced = false;
      this.#failed(error as Error);
      return;
    }
    this.#backoff = this.options.reconnectMin;
    void client.closed.then((error) => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#synced = false;
      this.#failed(error);
    });
  }

  async #resync(client: SerfRpcClient): Promise<void> {
    this.#synced = false;
    let missed = 0;
    // Subscribe first, then list, so nothing falls between the list and the stream.
    await client.stream(memberEventTypes, (event) => {
      if (this.#client !== client) return;
      if (this.#synced) this.#apply(event);
      else missed++;
    });
    // Events that crossed the listing may be newer than it: list again (rarely needed, bounded).
    for (let attempt = 0; ; attempt++) {
      missed = 0;
      const members = await client.membersFiltered();
      if (missed === 0 || attempt === 2) {
        this.#view = new Map(members.map((m) => [m.Name, m]));
        break;
      }
    }
    this.#synced = true;
    if (this.#knewCluster && this.#view.size <= 1) {
      this.#holding = true;
      this.#logger.warn(
        { rpc: this.options.rpc },
        "serf agent knows only itself; keeping the last member list until it rejoins its cluster",
      );
    }
    this.#emit();
  }

  #apply(event: SerfMemberEvent): void {
    for (const member of event.Members) {
      if (event.Event === "member-reap") this.#view.delete(member.Name);
      else this.#view.set(member.Name, member);
    }
    if (this.#cancelFlush === undefined) {
      this.#cancelFlush = this.#clock.setTimer(() => {
        this.#cancelFlush = undefined;
        this.#emit();
      }, this.options.coalesce);
    }
  }

  #emit(): void {
    if (this.#stopped || !this.#synced || this.#sink === undefined) return;
    if (this.#holding) {
      if (this.#view.size <= 1) return;
      this.#holding = false;
    }
    if (this.#view.size > 1) this.#knewCluster = true;
    if (!this.#up) {
      this.#up = true;
      this.#logger.debug({ rpc: this.options.rpc, known: this.#view.size }, "serf agent reached");
    }
    this.#sink.snapshot(this.#snapshot());
  }

  /** The members that qualify, in the shape the Cluster takes. */
  #snapshot(): Member[] {
    const members: Member[] = [];
    for (const serf of this.#view.values()) {
      if (!tagsMatch(this.#filters, serf.Tags, this.options.tagMatch)) continue;
      const url = this.#urlOf(serf);
      if (url === undefined) continue;
      const member: Member = { name: serf.Name, url, tags: serf.Tags, state: memberState(serf.Status) };
      members.push(withProtocol(member, this.options.protocol));
    }
    return members;
  }

  #urlOf(member: SerfMember): string | undefined {
    const value = member.Tags[this.options.urlTag] ?? "";
    const url = value.includes("://") ? value : `${this.options.urlScheme}://${value}`;
    const problem = value === "" ? "missing" : memberUrlProblem(url);
    if (problem === undefined) {
      this.#unusable.delete(member.Name);
      return url;
    }
    if (this.#unusable.get(member.Name) !== value) {
      this.#unusable.set(member.Name, value);
      this.#logger.warn(
        { member: member.Name, tag: this.options.urlTag, value, problem },
        "serf member has no usable URL tag; left out of the ring",
      );
    }
    return undefined;
  }

  /** Reports down (the Cluster logs the outage once) and retries with backoff and jitter. */
  #failed(error: Error): void {
    if (this.#stopped) return;
    this.#up = false;
    this.#sink?.down(error);
    const delay = this.#backoff * (0.75 + Math.random() * 0.5);
    this.#backoff = Math.min(this.#backoff * 2, this.options.reconnectMax);
    this.#logger.debug({ rpc: this.options.rpc, err: error, retryIn: Math.round(delay) }, "serf agent unreachable");
    this.#cancelRetry = this.#clock.setTimer(() => void this.#connect(), delay);
  }
}
