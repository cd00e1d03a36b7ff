import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import type { Coordination } from "../../handoff/coordination.ts";
import { type PublishedProgress, routingTable } from "../../handoff/routing.ts";
import { type Slot, slotOf } from "../../handoff/slots.ts";
import type { RoutingTable } from "../../handoff/table.ts";
import { type Clock, systemClock } from "../../utils/clock.ts";
import { type Logger, silentLogger } from "../../utils/logger.ts";
import { withProtocol } from "../protocol.ts";
import type { Member, MemberState, MembershipSource, SnapshotSink } from "../source.ts";
import { createEtcdClient } from "./client.ts";
import { defaultEtcdConfig, type EtcdConfig } from "./config.ts";
import {
  type HandoffDoc,
  type MemberRecord,
  parseHandoff,
  parseMember,
  parseNumber,
  parseVersion,
  type VersionDoc,
} from "./documents.ts";
import { parseKey } from "./keys.ts";

export interface EtcdSourceOptions extends Partial<EtcdConfig> {
  /** A client to share (a member and the source in one process); default: one made from the connection fields. */
  client?: Etcd3;
  clock?: Clock;
  logger?: Logger;
  /** First and longest wait between attempts to reach etcd, in milliseconds (doubling). */
  retryMin?: number;
  retryMax?: number;
}

/** A registered member as the source last read it. */
export interface RegisteredMember extends MemberRecord {
  name: string;
  /** The member key's create revision (registration order). */
  createRevision: bigint;
  /** The lease the member key is under ("0": none): one registration of the member. */
  lease: string;
}

/** Milliseconds registered members may go without an election candidate before the proxy says so. */
const stalledAfter = 2000;

/** Why coordinated hand-offs cannot start: registered members but no election candidate. */
export const noLeaderReason =
  "no leader: no member takes part in the election; members registered without the protocol need handoff: immediate";

/** Everything under the prefix, as of the last watch event. Read-only for listeners. */
export interface EtcdView {
  members: ReadonlyMap<string, RegisteredMember>;
  /** Election candidates → create revision of their `election/<name>` key. */
  election: ReadonlyMap<string, bigint>;
  versions: ReadonlyMap<number, VersionDoc>;
  handoff: ReadonlyMap<string, HandoffDoc>;
  ready: ReadonlyMap<string, number>;
  stable: number | undefined;
  /** The store revision this view reflects. */
  revision: bigint;
}

/**
 * Members from etcd: one read of the whole prefix, then one watch from the
 * next revision. Compaction, a broken stream or a reconnect start over with
 * a fresh read (a resync); while etcd cannot be reached the source reports
 * down and the last view stands. Members vanish when their lease expires
 * because etcd deletes their keys.
 *
 * With `handoff: coordinated` (the default) members enter the ring through
 * the leader's versions, and `coordination` gives the Cluster the ring to
 * route by while hand-offs run. With `immediate`, a member is in as soon as
 * its key says ready.
 */
export class EtcdSource implements MembershipSource {
  readonly kind = "etcd";
  readonly config: Readonly<EtcdConfig>;
  readonly client: Etcd3;
  readonly coordination: Coordination | undefined;
  readonly #ownsClient: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #filters: [string, RegExp][];
  readonly #retryMin: number;
  readonly #retryMax: number;
  #retry: number;
  #cancelRetry: (() => void) | undefined;
  #sink: SnapshotSink | undefined;
  #watcher: Watcher | undefined;
  #stopped = true;
  /** Bumped on every resync, so a late event from a replaced watcher changes nothing. */
  #epoch = 0;
  #members = new Map<string, RegisteredMember>();
  /** Last known records of members that left etcd while still in the current version (their URL is still routed to). */
  #departed = new Map<string, RegisteredMember>();
  #election = new Map<string, bigint>();
  #versions = new Map<number, VersionDoc>();
  #handoff = new Map<string, HandoffDoc>();
  /** The lease each `handoff/<name>` was written under. */
  #handoffLease = new Map<string, string>();
  #ready = new Map<string, number>();
  #stable: number | undefined;
  #revision = 0n;
  #listeners = new Set<(view: EtcdView) => void>();
  #routing = new RoutingState();
  #stalled: string | undefined;
  #cancelStalled: (() => void) | undefined;

  constructor(options: EtcdSourceOptions = {}) {
    const { client, clock, logger, retryMin, retryMax, ...rest } = options;
    const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<EtcdConfig>;
    const base = defaultEtcdConfig(defined.cluster);
    this.config = Object.freeze({ ...base, ...defined });
    this.#ownsClient = client === undefined;
    this.client = client ?? createEtcdClient(this.config);
    this.#clock = clock ?? systemClock;
    this.#logger = logger ?? silentLogger;
    this.#filters = Object.entries(this.config.tags).map(([tag, pattern]) => [tag, new RegExp(pattern)]);
    this.#retryMin = retryMin ?? 100;
    this.#retryMax = retryMax ?? 2000;
    this.#retry = this.#retryMin;
    this.coordination = this.config.handoff === "coordinated" ? this.#coordination() : undefined;
  }

  /** Resolves after the first attempt to read etcd, successful or not (it keeps retrying). */
  async start(sink: SnapshotSink): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#sink = sink;
    await this.#resync();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#epoch++;
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    this.#cancelStalled?.();
    this.#cancelStalled = undefined;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await watcher?.cancel().catch(() => {});
    if (this.#ownsClient) this.client.close();
  }

  /** Called after every change to the view (and after each resync). Returns the function that removes it. */
  onChange(listener: (view: EtcdView) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get view(): EtcdView {
    return {
      members: this.#members,
      election: this.#election,
      versions: this.#versions,
      handoff: this.#handoff,
      ready: this.#ready,
      stable: this.#stable,
      revision: this.#revision,
    };
  }

  /** Whether a registered member passes the tag filters. */
  admits(member: MemberRecord): boolean {
    return this.#filters.every(([tag, re]) => re.test(member.tags[tag] ?? ""));
  }

  /** The latest published version, if any. */
  latestVersion(): VersionDoc | undefined {
    let latest: VersionDoc | undefined;
    for (const doc of this.#versions.values()) if (latest === undefined || doc.version > latest.version) latest = doc;
    return latest;
  }

  async #resync(): Promise<void> {
    if (this.#stopped) return;
    const epoch = ++this.#epoch;
    const previous = this.#watcher;
    this.#watcher = undefined;
    void previous?.cancel().catch(() => {});
    try {
      const response = await this.client.getAll().prefix(this.config.prefix).exec();
      if (epoch !== this.#epoch) return;
      const revision = BigInt(response.header.revision);
      this.#clear();
      for (const kv of response.kvs) this.#put(kv);
      this.#revision = revision;
      const watcher = await this.client
        .watch()
        .prefix(this.config.prefix)
        .startRevision(String(revision + 1n))
        .create();
      if (epoch !== this.#epoch) {
        void watcher.cancel().catch(() => {});
        return;
      }
      this.#watcher = watcher;
      let disconnected = false;
      watcher.on("data", (res) => {
        if (epoch !== this.#epoch) return;
        for (const event of res.events) {
          if (event.type === "Put") this.#put(event.kv);
          else this.#delete(event.kv);
        }
        this.#revision = BigInt(res.header.revision);
        this.#changed();
      });
      watcher.on("disconnected", (error: Error) => {
        if (epoch !== this.#epoch || disconnected) return;
        disconnected = true;
        this.#failed(error);
      });
      // etcd3 re-attaches the watch by itself; a fresh read afterwards is
      // simpler to trust than the events it may or may not replay.
      watcher.on("connected", () => {
        if (epoch !== this.#epoch || !disconnected) return;
        this.#logger.info({ source: "etcd" }, "etcd watch reconnected, resyncing");
        void this.#resync();
      });
      watcher.on("error", (error: Error) => {
        if (epoch !== this.#epoch) return;
        this.#logger.warn({ source: "etcd", err: error }, "etcd watch cancelled (compaction?), resyncing");
        void this.#resync();
      });
      this.#retry = this.#retryMin;
      this.#logger.debug({ source: "etcd", revision: String(revision) }, "etcd view read");
      this.#changed();
    } catch (error) {
      if (epoch !== this.#epoch) return;
      this.#failed(error as Error);
    }
  }

  #failed(error: Error): void {
    if (this.#stopped) return;
    this.#logger.warn({ source: "etcd", err: error, retryIn: this.#retry }, "etcd unreachable, keeping the last view");
    this.#sink?.down(error);
    this.#cancelRetry?.();
    const epoch = this.#epoch;
    this.#cancelRetry = this.#clock.setTimer(() => {
      this.#cancelRetry = undefined;
      if (epoch === this.#epoch) void this.#resync();
    }, this.#retry);
    this.#retry = Math.min(this.#retry * 2, this.#retryMax);
  }

  #clear(): void {
    for (const [name, member] of this.#members) this.#departed.set(name, member);
    this.#members = new Map();
    this.#election = new Map();
    this.#versions = new Map();
    this.#handoff = new Map();
    this.#handoffLease = new Map();
    this.#ready = new Map();
    this.#stable = undefined;
  }

  #put(kv: IKeyValue): void {
    const parsed = parseKey(this.config.prefix, kv.key.toString());
    if (parsed === undefined) return;
    const { section, name } = parsed;
    const text = kv.value.toString();
    if (section === "members") {
      const record = parseMember(text);
      if (record === undefined) {
        this.#logger.warn(
          { source: "etcd", member: name },
          "member value is not {url, tags, ready, protocol}: left out",
        );
        this.#members.delete(name);
        return;
      }
      this.#members.set(name, { name, ...record, createRevision: BigInt(kv.create_revision), lease: String(kv.lease) });
      this.#departed.delete(name);
    } else if (section === "election") this.#election.set(name, BigInt(kv.create_revision));
    else if (section === "versions") {
      const doc = parseVersion(text);
      if (doc !== undefined) this.#versions.set(doc.version, doc);
    } else if (section === "handoff") {
      const doc = parseHandoff(text);
      if (doc !== undefined) {
        this.#handoff.set(name, doc);
        this.#handoffLease.set(name, String(kv.lease));
      }
    } else if (section === "ready") {
      const n = parseNumber(text);
      if (n !== undefined) this.#ready.set(name, n);
    } else if (section === "stable") this.#stable = parseNumber(text);
  }

  #delete(kv: IKeyValue): void {
    const parsed = parseKey(this.config.prefix, kv.key.toString());
    if (parsed === undefined) return;
    const { section, name } = parsed;
    if (section === "members") {
      const member = this.#members.get(name);
      if (member) this.#departed.set(name, member);
      this.#members.delete(name);
    } else if (section === "election") this.#election.delete(name);
    else if (section === "versions") this.#versions.delete(Number(name));
    else if (section === "handoff") {
      this.#handoff.delete(name);
      this.#handoffLease.delete(name);
    } else if (section === "ready") this.#ready.delete(name);
    else if (section === "stable") this.#stable = undefined;
  }

  #changed(): void {
    if (this.#stopped) return;
    const latest = this.latestVersion();
    if (this.coordination) {
      const alive = new Map<string, string>();
      for (const m of this.#members.values()) alive.set(m.name, m.lease);
      const progress = new Map<string, PublishedProgress>();
      for (const [name, doc] of this.#handoff) progress.set(name, { doc, lease: this.#handoffLease.get(name) ?? "0" });
      const revision = String(this.#revision);
      this.#routing.update(
        routingTable({ versions: this.#versions, alive, progress, revision }),
        latest,
        this.#clock.now(),
      );
      this.#noteStalled();
    }
    this.#sink?.snapshot(this.#snapshot(latest));
    for (const listener of this.#listeners) {
      try {
        listener(this.view);
      } catch (error) {
        this.#logger.error({ source: "etcd", err: error }, "etcd view listener threw");
      }
    }
  }

  /**
   * Says once (log, then `stalled` for /readyz and the ring page) why no
   * version can come: members registered, none in the election, for longer
   * than a joining member takes between its two keys.
   */
  #noteStalled(): void {
    const stalled = this.#members.size > 0 && this.#election.size === 0;
    if (!stalled) {
      this.#cancelStalled?.();
      this.#cancelStalled = undefined;
      if (this.#stalled !== undefined)
        this.#logger.info({ source: "etcd" }, "a member takes part in the election again");
      this.#stalled = undefined;
      return;
    }
    if (this.#stalled !== undefined || this.#cancelStalled !== undefined) return;
    this.#cancelStalled = this.#clock.setTimer(() => {
      this.#cancelStalled = undefined;
      if (this.#stopped) return;
      this.#stalled = noLeaderReason;
      this.#logger.warn({ source: "etcd", members: this.#members.size }, noLeaderReason);
    }, stalledAfter);
  }

  #snapshot(latest: VersionDoc | undefined): Member[] {
    const members: Member[] = [];
    if (this.coordination === undefined) {
      for (const m of this.#members.values()) {
        if (!this.admits(m)) continue;
        members.push(member(m, m.ready ? "alive" : "failed"));
      }
      return members;
    }
    // Coordinated: the ring is the latest version's, so every process that
    // reads it builds the same ring; a member gone from etcd stays routed
    // (by its last known URL) until the leader publishes a version without it.
    const inVersion = new Set(latest?.members ?? []);
    for (const m of this.#members.values()) {
      members.push(member(m, inVersion.has(m.name) ? "alive" : "failed"));
    }
    for (const name of inVersion) {
      const gone = this.#departed.get(name);
      if (!this.#members.has(name) && gone) members.push(member(gone, "alive"));
    }
    for (const name of this.#departed.keys()) if (!inVersion.has(name)) this.#departed.delete(name);
    return members;
  }

  #coordination(): Coordination {
    const source = this;
    const routing = this.#routing;
    return {
      get version() {
        return source.latestVersion()?.version;
      },
      get stableVersion() {
        return source.#stable;
      },
      get consistent() {
        const latest = source.latestVersion();
        return latest?.members.every((m) => source.#ready.get(m) === latest.version) ?? false;
      },
      get partitionsInHandoff() {
        return routing.pending.size;
      },
      get handoffWait() {
        return source.config.handoffWait;
      },
      get stalled() {
        return source.#stalled;
      },
      routing: () => routing.table,
      set onHandoff(fn: ((seconds: number) => void) | undefined) {
        routing.onSettled = fn;
      },
      get onHandoff() {
        return routing.onSettled;
      },
    };
  }
}

/**
 * The proxy's side of hand-offs: the routing rule's latest table, kept
 * when a version cannot be built here, and when each slot that is not ready
 * was first seen so (for the hand-off duration metric only; routing never
 * reads it).
 */
class RoutingState {
  table: RoutingTable | undefined;
  /** Slot → when this process first saw it not ready (ms). */
  pending = new Map<Slot, number>();
  onSettled: ((seconds: number) => void) | undefined;

  update(table: RoutingTable | undefined, latest: VersionDoc | undefined, now: number): void {
    if (table === undefined) {
      // Before the first version there is nothing to route by; a version this process cannot build keeps the last table.
      if (latest === undefined) this.table = undefined;
      return;
    }
    this.table = table;
    const still = new Map<Slot, number>();
    for (let p = 0; p < table.ring.config.partitions; p++) {
      for (let r = 0; r < table.ranks; r++) {
        if (table.state(p, r) === "ready") continue;
        const slot = slotOf(p, r);
        still.set(slot, this.pending.get(slot) ?? now);
      }
    }
    for (const [slot, since] of this.pending) if (!still.has(slot)) this.onSettled?.((now - since) / 1000);
    this.pending = still;
  }
}

/** The Member a registered member's record makes, in `state`. */
function member(record: RegisteredMember, state: MemberState): Member {
  return withProtocol({ name: record.name, url: record.url, tags: record.tags, state }, record.protocol);
}
