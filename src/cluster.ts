import type { Member, MembershipSource, SnapshotSink } from "./membership/source.ts";
import { type Acquire, diff, type Release } from "./ring/diff.ts";
import { Ring, type RingConfig } from "./ring/ring.ts";

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
  /** The source went down (error set) or delivered again after being down. Called on changes only. */
  source?(up: boolean, error?: Error): void;
  /**
   * The source reported a failure: every one, also while already down (a
   * file that still does not parse, another failed reconnect). For counting
   * errors; `source` tells up from down.
   */
  sourceError?(error: Error): void;
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
}

/**
 * Turns a membership source's snapshots into immutable rings and exact
 * events. Lookups read the current ring; they never wait on the source.
 */
export class Cluster {
  /** The current ring. Replaced whole on every membership change, never mutated. */
  ring: Ring;
  /** Everything the source last reported, ring members or not, by name. */
  #known = new Map<string, Member>();
  #listeners = new Set<ClusterListener>();
  #synced = false;
  #sourceUp = false;
  /** Whether listeners were told the source is down, so they hear it once per outage. */
  #toldDown = false;
  #started = false;
  /** Bumped on stop, so a late snapshot from a stopped source changes nothing. */
  #generation = 0;
  readonly #source: MembershipSource;
  readonly #local: string | undefined;
  readonly #filter: (member: Member) => boolean;

  constructor(options: ClusterOptions) {
    this.#source = options.source;
    this.#local = options.local;
    this.#filter = options.filter ?? (() => true);
    this.ring = Ring.build([], options.ring);
  }

  /** Starts the source. Events flow from here on; `synced` turns true with its first snapshot. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const generation = this.#generation;
    const sink: SnapshotSink = {
      snapshot: (members) => {
        if (generation === this.#generation) this.#apply(members);
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
    return this.#sourceUp;
  }

  get sourceKind(): string {
    return this.#source.kind;
  }

  /**
   * The ring the proxy routes by. It is `ring` except while partitions are
   * being handed over (coordinated hand-offs), when each partition keeps its
   * old owner until the new one is ready.
   */
  get routing(): Ring {
    return this.ring;
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

  #apply(snapshot: readonly Member[]): void {
    const known = new Map<string, Member>();
    for (const member of snapshot) {
      if (!member.name) continue; // a member with no name cannot be placed
      known.set(member.name, Object.freeze({ ...member, tags: Object.freeze({ ...member.tags }) }));
    }
    const previousKnown = this.#known;
    this.#known = known;
    const wasUp = this.#sourceUp;
    this.#synced = true;
    this.#sourceUp = true;
    this.#toldDown = false;
    if (!wasUp) this.#emit((l) => l.source?.(true));

    const inRing = [...known.values()].filter((m) => m.state === "alive" && this.#filter(m)).map((m) => m.name);
    const previous = this.ring;
    if (inRing.length === previous.size && inRing.every((name) => previous.has(name))) return;

    const next = previous.withMembers(inRing);
    this.ring = next;
    for (const name of previous.members) {
      if (!next.has(name)) {
        const member = known.get(name) ?? ({ ...(previousKnown.get(name) as Member), state: "left" } as Member);
        this.#emit((l) => l.memberDown?.(member));
      }
    }
    for (const name of next.members) {
      if (!previous.has(name)) this.#emit((l) => l.memberUp?.(known.get(name) as Member));
    }
    const events = diff(previous, next).filter((e) => this.#local === undefined || e.member === this.#local);
    for (const event of events) if (event.type === "release") this.#emit((l) => l.release?.(event));
    for (const event of events) if (event.type === "acquire") this.#emit((l) => l.acquire?.(event));
    this.#emit((l) => l.ring?.(next, previous));
  }

  #down(error: Error): void {
    this.#sourceUp = false;
    this.#emit((l) => l.sourceError?.(error));
    if (!this.#toldDown) {
      this.#toldDown = true;
      this.#emit((l) => l.source?.(false, error));
    }
  }

  #emit(call: (listener: ClusterListener) => void): void {
    for (const listener of this.#listeners) {
      try {
        call(listener);
      } catch (error) {
        // One broken listener must not stop the others or the ring update.
        process.emitWarning(`cluster listener threw: ${(error as Error)?.stack ?? error}`);
      }
    }
  }
}
