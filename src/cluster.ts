import type { Coordination } from "./handoff/coordination.ts";
import { RoutingTable } from "./handoff/table.ts";
import { sameAddress } from "./membership/protocol.ts";
import type { Member, MembershipSource, SnapshotSink } from "./membership/source.ts";
import { type Acquire, diff, type Release } from "./ring/diff.ts";
import { Ring, type RingConfig } from "./ring/ring.ts";
import { type Clock, systemClock } from "./utils/clock.ts";
import { type Logger, silentLogger } from "./utils/logger.ts";

/**
 * Callbacks for cluster changes; implement the ones you need. Called
 * synchronously, in this order for one change: memberDown, memberUp, every
 * release, every acquire, then ring. By then `cluster.ring` is already the
 * new ring, so a listener that looks up keys sees the new owners.
 */
export interface ClusterListener {
  /** A member entered the ring. */
  memberUp?(member: Member): void;
  /** A member left the ring (failed, left, filtered out, or gone from the source). */
  memberDown?(member: Member): void;
  /** A member took over a (partition, rank). With `local` set, only the local member's. */
  acquire?(event: Acquire): void;
  /** A member gave up a (partition, rank). With `local` set, only the local member's. */
  release?(event: Release): void;
  /** The ring changed. */
  ring?(ring: Ring, previous: Ring): void;
  /**
   * A member the source still lists is now reached differently: a new URL
   * or protocol under the same name. Connections made for the old record
   * are of no use (the proxy drops its pools for it). Before `changed`.
   */
  memberChanged?(member: Member, previous: Member): void;
  /** The source went down (error set) or delivered again after being down. Called on changes only. */
  source?(up: boolean, error?: Error): void;
  /**
   * The source reported a failure: every one, also while already down (a
   * file that still does not parse, another failed reconnect). For counting
   * errors; `source` tells up from down.
   */
  sourceError?(error: Error): void;
  /**
   * A snapshot or a reload was applied, whether or not the ring changed: what
   * the proxy routes by (`routing`, hand-offs in progress, member records
   * such as URLs) may be new. Called last, after any of the above.
   */
  changed?(): void;
}

export interface ClusterOptions {
  /** Where members come from. */
  source: MembershipSource;
  /**
   * This process's member name, for a service that shards itself (libring's
   * view): acquire/release then concern only this member's partitions, with
   * the other member in `from`/`to`. Leave unset for the proxy's view, where
   * they are reported for every member.
   */
  local?: string;
  /** Ring settings; defaults as in defaultRingConfig(). */
  ring?: Partial<RingConfig>;
  /**
   * Which alive members may join the ring, e.g. a tag match like libring's
   * WatchTags. A member that stops matching leaves the ring: the way to drain it.
   */
  filter?: (member: Member) => boolean;
  /**
   * Builds rings elsewhere (e.g. `RingBuilder.build`, on a worker thread),
   * so a large ring never blocks this event loop. While a build runs,
   * lookups use the old ring and new snapshots wait; only the latest of them
   * is built next. A failed build falls back to building here. Unset, rings
   * are built synchronously inside the snapshot.
   */
  build?: (members: readonly string[], config: RingConfig) => Promise<Ring>;
  /** Time for `sourceState.since`; default the system clock. */
  clock?: Clock;
  /** Where the source going down and coming back, and a throwing listener, are logged. Default: silent. */
  logger?: Logger;
}

/** Whether the membership source delivers, since when, and why not: what /readyz reports. */
export interface SourceState {
  /** True while the source delivers; false before its first snapshot and while it is down. */
  up: boolean;
  /** When `up` last changed (or the cluster was made), in clock milliseconds. */
  since: number;
  /** The latest failure's message while down. */
  lastError?: string;
}

/**
 * Turns a membership source's snapshots into immutable rings and exact
 * events. Lookups read the current ring; they never wait on the source.
 */
export class Cluster {
  #ring: Ring;
  /** Everything the source last reported, ring members or not, by name. */
  #known = new Map<string, Member>();
  #listeners = new Set<ClusterListener>();
  #synced = false;
  #sourceState: SourceState;
  /** Whether listeners were told the source is down, so they hear it once per outage. */
  #toldDown = false;
  #started = false;
  /** Bumped on stop, so a late snapshot from a stopped source changes nothing. */
  #generation = 0;
  #source: MembershipSource;
  readonly #local: string | undefined;
  readonly #filter: (member: Member) => boolean;
  readonly #build: ClusterOptions["build"];
  /** The latest snapshot not yet applied while a ring build runs, with the generation it came in. */
  #pending: { snapshot: readonly Member[]; generation: number } | undefined;
  /** Resolves when the running build loop has applied everything; undefined when idle. */
  #building: Promise<void> | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  /** `ring` with every slot ready: the routing table without coordinated hand-offs. */
  #readyTable: RoutingTable | undefined;

  constructor(options: ClusterOptions) {
    this.#source = options.source;
    this.#local = options.local;
    this.#filter = options.filter ?? (() => true);
    this.#build = options.build;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#sourceState = Object.freeze({ up: false, since: this.#clock.now() });
    this.#ring = Ring.build([], options.ring);
  }

  /** The current ring. Replaced whole on every membership change, never mutated. */
  get ring(): Ring {
    return this.#ring;
  }

  /**
   * Applies a reload: new ring settings rebuild the ring over the same
   * members, reported like any membership change (events, then `ring`); a new
   * source replaces the running one, and until it delivers, the ring and the
   * members stay as they were.
   */
  async reconfigure(change: { ring?: Partial<RingConfig>; source?: MembershipSource }): Promise<void> {
    if (change.ring !== undefined) {
      const next = Ring.build([...this.#ring.members], { ...this.#ring.config, ...change.ring });
      if (next.checksum !== this.#ring.checksum) this.#replace(next, this.#known, this.#known);
      this.#emit((l) => l.changed?.());
    }
    if (change.source !== undefined) {
      const running = this.#started;
      await this.stop();
      this.#source = change.source;
      if (running) await this.start();
    }
  }

  /** Starts the source. Events flow from here on; `synced` turns true with its first snapshot. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const generation = this.#generation;
    const sink: SnapshotSink = {
      snapshot: (members) => {
        if (generation === this.#generation) this.#receive(members, generation);
      },
      down: (error) => {
        if (generation === this.#generation) this.#down(error);
      },
    };
    await this.#source.start(sink);
  }

  /** Stops the source. The ring stays as it was; `start()` may be called again. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#generation++;
    await this.#source.stop();
  }

  /** Registers a listener; returns the function that removes it. */
  listen(listener: ClusterListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** True once the source has delivered a snapshot. */
  get synced(): boolean {
    return this.#synced;
  }

  /** True while the source delivers; false after it reported down and until it delivers again. */
  get sourceUp(): boolean {
    return this.#sourceState.up;
  }

  /** The source's state for readiness: up or down, since when, the last error. A frozen snapshot. */
  get sourceState(): SourceState {
    return this.#sourceState;
  }

  get sourceKind(): string {
    return this.#source.kind;
  }

  /**
   * The table the proxy routes by. Without coordinated hand-offs it is
   * `ring` with every slot ready; under them, the hand-off routing rule's
   * table: each slot to its owner once ready, to its old owner while that one
   * still holds it, or to nobody (requests wait).
   */
  get routing(): RoutingTable {
    const table = this.#source.coordination?.routing();
    if (table !== undefined) return table;
    // Read on every request: the ring's table is made once per ring, not looked up each time.
    if (this.#readyTable?.ring !== this.#ring) this.#readyTable = RoutingTable.ready(this.#ring);
    return this.#readyTable;
  }

  /** Versions and hand-offs, when the source coordinates them (etcd, `handoff: coordinated`). */
  get coordination(): Coordination | undefined {
    return this.#source.coordination;
  }

  /** Milliseconds a request waits for a partition in hand-off (coordinated sources only). */
  get handoffWait(): number | undefined {
    return this.#source.coordination?.handoffWait;
  }

  /** The latest ring version the leader published (coordinated sources only). */
  get version(): number | undefined {
    return this.coordination?.version;
  }

  /** The latest version every one of its members finished (coordinated sources only). */
  get stableVersion(): number | undefined {
    return this.coordination?.stableVersion;
  }

  /** Every member of the latest version reports having finished it; true without coordination. */
  get consistent(): boolean {
    return this.coordination?.consistent ?? true;
  }

  /** Members in the ring, in ring order. */
  members(): Member[] {
    return this.ring.members.map((name) => this.#known.get(name) as Member);
  }

  /** Every member the source reported, in the ring or not. */
  knownMembers(): Member[] {
    return [...this.#known.values()];
  }

  member(name: string): Member | undefined {
    return this.#known.get(name);
  }

  /** Members in the ring. */
  get size(): number {
    return this.ring.size;
  }

  /** Whether `name` is in the ring. */
  has(name: string): boolean {
    return this.ring.has(name);
  }

  ownerOf(key: string): Member | undefined {
    const name = this.ring.ownerOf(key);
    return name === undefined ? undefined : this.#known.get(name);
  }

  /** The key's first `count` members in preference order (default: its owners). */
  ownersOf(key: string, count = this.ring.ownerCount): Member[] {
    const names =
      count <= this.ring.ownerCount
        ? this.ring.ownersOf(key).slice(0, count)
        : this.ring.preferenceList(key).slice(0, count);
    return names.map((name) => this.#known.get(name) as Member);
  }

  /** Whether the local member owns the key at any rank (with R replicas, R members say yes). */
  isLocal(key: string): boolean {
    return this.#local !== undefined && this.ring.ownersOf(key).includes(this.#local);
  }

  /** Whether the local member is the key's primary: exactly one member says yes. */
  isPrimary(key: string): boolean {
    return this.ownsRank(key, 0);
  }

  /** Whether the local member holds the key at replica rank `rank` (0 is the primary). */
  ownsRank(key: string, rank: number): boolean {
    return this.#local !== undefined && this.ring.ownersOf(key)[rank] === this.#local;
  }

  /** Resolves once no ring build is running or waiting (at once without a `build` option). */
  async idle(): Promise<void> {
    while (this.#building !== undefined) await this.#building;
  }

  #receive(snapshot: readonly Member[], generation: number): void {
    if (this.#build === undefined) {
      this.#apply(snapshot);
      return;
    }
    this.#pending = { snapshot, generation };
    this.#building ??= this.#buildLoop(this.#build).finally(() => {
      this.#building = undefined;
    });
  }

  /** Applies pending snapshots one at a time, each with a ring built by `build`. */
  async #buildLoop(build: NonNullable<ClusterOptions["build"]>): Promise<void> {
    while (this.#pending !== undefined) {
      const { snapshot, generation } = this.#pending;
      this.#pending = undefined;
      const names = this.#ringMembers(this.#freeze(snapshot));
      let next: Ring | undefined;
      if (!this.#sameMembers(names)) {
        try {
          next = await build(names, this.ring.config);
        } catch {
          next = undefined; // #apply builds it here instead
        }
      }
      // A snapshot from before a stop() changes nothing.
      if (generation === this.#generation) this.#apply(snapshot, next);
    }
  }

  #freeze(snapshot: readonly Member[]): Map<string, Member> {
    const known = new Map<string, Member>();
    for (const member of snapshot) {
      if (!member.name) continue; // a member with no name cannot be placed
      known.set(member.name, Object.freeze({ ...member, tags: Object.freeze({ ...member.tags }) }));
    }
    return known;
  }

  #ringMembers(known: Map<string, Member>): string[] {
    return [...known.values()].filter((m) => m.state === "alive" && this.#filter(m)).map((m) => m.name);
  }

  #sameMembers(names: readonly string[]): boolean {
    return names.length === this.ring.size && names.every((name) => this.ring.has(name));
  }

  /** Applies a snapshot; `built` is its ring when built elsewhere (ignored if the members differ). */
  #apply(snapshot: readonly Member[], built?: Ring): void {
    const known = this.#freeze(snapshot);
    const previousKnown = this.#known;
    this.#known = known;
    const wasUp = this.#sourceState.up;
    this.#synced = true;
    this.#toldDown = false;
    if (!wasUp) {
      const { since, lastError } = this.#sourceState;
      this.#sourceState = Object.freeze({ up: true, since: this.#clock.now() });
      const fields = { source: this.#source.kind, members: known.size, downFor: this.#sourceState.since - since };
      // Back after a failure is news; the first snapshot of a healthy start is not.
      if (lastError !== undefined) this.#logger.info(fields, "membership source back up");
      else this.#logger.debug(fields, "membership source synced");
      this.#emit((l) => l.source?.(true));
    }

    const inRing = this.#ringMembers(known);
    const previous = this.ring;
    if (!this.#sameMembers(inRing)) {
      const fits = built !== undefined && built.size === inRing.length && inRing.every((name) => built.has(name));
      this.#replace(fits ? built : previous.withMembers(inRing), known, previousKnown);
    }
    for (const [name, member] of known) {
      const before = previousKnown.get(name);
      if (before !== undefined && !sameAddress(before, member)) this.#emit((l) => l.memberChanged?.(member, before));
    }
    this.#emit((l) => l.changed?.());
  }

  /** Makes `next` the ring and tells listeners what changed: members down, up, releases, acquires, ring. */
  #replace(next: Ring, known: Map<string, Member>, previousKnown: Map<string, Member>): void {
    const previous = this.#ring;
    this.#ring = next;
    for (const name of previous.members) {
      if (!next.has(name)) {
        const member = known.get(name) ?? ({ ...(previousKnown.get(name) as Member), state: "left" } as Member);
        this.#emit((l) => l.memberDown?.(member));
      }
    }
    for (const name of next.members) {
      if (!previous.has(name)) this.#emit((l) => l.memberUp?.(known.get(name) as Member));
    }
    // A new partition count (a reload) moves every key: there is no partition-by-partition change to report.
    const comparable = previous.config.partitions === next.config.partitions;
    const events = comparable
      ? diff(previous, next).filter((e) => this.#local === undefined || e.member === this.#local)
      : [];
    for (const event of events) if (event.type === "release") this.#emit((l) => l.release?.(event));
    for (const event of events) if (event.type === "acquire") this.#emit((l) => l.acquire?.(event));
    this.#emit((l) => l.ring?.(next, previous));
  }

  #down(error: Error): void {
    const { up, since } = this.#sourceState;
    this.#sourceState = Object.freeze({
      up: false,
      since: up ? this.#clock.now() : since,
      lastError: error.message,
    });
    this.#emit((l) => l.sourceError?.(error));
    if (!this.#toldDown) {
      this.#toldDown = true;
      // Once per outage; later failures of the same outage are counted (sourceError), not logged again.
      this.#logger.warn(
        { source: this.#source.kind, err: error },
        this.#synced ? "membership source down; keeping the last member list" : "membership source down",
      );
      this.#emit((l) => l.source?.(false, error));
    } else {
      this.#logger.debug({ source: this.#source.kind, err: error }, "membership source still down");
    }
  }

  #emit(call: (listener: ClusterListener) => void): void {
    for (const listener of this.#listeners) {
      try {
        call(listener);
      } catch (error) {
        // One broken listener must not stop the others or the ring update.
        this.#logger.error({ err: error }, "cluster listener threw");
      }
    }
  }
}
