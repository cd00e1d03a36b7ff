import { EventEmitter } from "node:events";
import type { Lease } from "etcd3";
import { type HandoffHandlers, HandoffRunner } from "../../handoff/runner.ts";
import { Ring, type RingConfig } from "../../ring/ring.ts";
import { type Clock, systemClock } from "../../utils/clock.ts";
import { type Logger, silentLogger } from "../../utils/logger.ts";
import type { HandoffDoc, VersionDoc } from "./documents.ts";
import { keyOf, stableKey } from "./keys.ts";
import type { EtcdSource, EtcdView } from "./source.ts";

export interface EtcdMemberOptions {
  /** The member's unique name: its key is `<prefix>members/<name>`. */
  name: string;
  /** Where the proxy sends this member's requests. */
  url: string;
  tags?: Record<string, string>;
  /** Lease TTL in milliseconds, rounded up to whole seconds (etcd's unit). Default 10 s. */
  ttl?: number;
  /** Whether the member joins ready (in the ring). Default true. */
  ready?: boolean;
  /** What to do with partitions that move to or from this member. Default: nothing to move. */
  handoff?: HandoffHandlers;
  /** Milliseconds to wait for an old owner's release before acquiring anyway. Default: the source's (30 s). */
  handoffTimeout?: number;
  /** The ring settings the leader publishes with each version. Default: defaultRingConfig(). */
  ring?: Partial<RingConfig>;
  /** Runs on every member when a version becomes stable (every member of it finished its hand-offs). */
  onStable?: (version: number) => void;
  clock?: Clock;
  logger?: Logger;
}

/**
 * A process's membership in an etcd cluster: registration under a lease
 * kept alive, readiness, a place in the leader election, and its side of
 * coordinated hand-offs. The leader (lowest create revision under
 * `election/`) publishes a version for every change of the ready members and
 * marks it stable once every member of it reports done.
 *
 * Events: `leader` (isLeader: boolean, leader: string | undefined) on every
 * change of leader; `stable` (version) as `onStable`; `lost` (error) when the
 * lease expired and the member registers again.
 */
export class EtcdMember extends EventEmitter {
  readonly name: string;
  readonly #source: EtcdSource;
  readonly #options: EtcdMemberOptions;
  readonly #ttlSeconds: number;
  readonly #ringConfig: RingConfig;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #runner: HandoffRunner;
  #lease: Lease | undefined;
  #ready: boolean;
  #joined = false;
  #unlisten: (() => void) | undefined;
  #leader: string | undefined;
  #stable: number | undefined;
  #leading = false;
  #leadAgain = false;
  #writing = false;
  #pending: { doc: HandoffDoc; done: boolean } | undefined;
  #readyWritten: number | undefined;
  #cancelRetry: (() => void) | undefined;

  constructor(source: EtcdSource, options: EtcdMemberOptions) {
    super();
    this.name = options.name;
    this.#source = source;
    this.#options = options;
    this.#ttlSeconds = Math.max(1, Math.ceil((options.ttl ?? 10_000) / 1000));
    this.#ringConfig = Ring.build([], options.ring).config;
    this.#clock = options.clock ?? systemClock;
    this.#logger = (options.logger ?? silentLogger).child({ member: options.name });
    this.#ready = options.ready ?? true;
    this.#runner = new HandoffRunner({
      name: options.name,
      handlers: options.handoff ?? {},
      timeout: options.handoffTimeout ?? source.config.handoffTimeout,
      clock: this.#clock,
      logger: this.#logger,
      alive: (member) => source.view.members.has(member),
      progress: (member) => source.view.handoff.get(member),
      publish: (doc, done) => this.#publish(doc, done),
    });
  }

  /**
   * Registers the member (a lease, its member key and its election key) and
   * takes part from then on. Start the source (or its Cluster) first: the
   * member reads the cluster through it.
   */
  async join(): Promise<void> {
    if (this.#joined) return;
    this.#joined = true;
    await this.#register();
    this.#unlisten = this.#source.onChange((view) => this.#onView(view));
    this.#onView(this.#source.view);
  }

  /** Marks the member ready (in the ring) or not (drained: its partitions move away). */
  async setReady(ready: boolean): Promise<void> {
    this.#ready = ready;
    if (this.#lease) await this.#putMember(this.#lease);
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Leaves: revokes the lease, so etcd deletes every key of this member at once. */
  async leave(): Promise<void> {
    if (!this.#joined) return;
    this.#joined = false;
    this.#unlisten?.();
    this.#cancelRetry?.();
    this.#runner.stop();
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.revoke().catch((error) => this.#logger.warn({ err: error }, "lease revoke failed; it will expire"));
  }

  isLeader(): boolean {
    return this.#joined && this.#leader === this.name;
  }

  /** The current leader's name, as far as this member knows. */
  get leader(): string | undefined {
    return this.#leader;
  }

  /** The latest version this member has taken up. */
  get version(): number | undefined {
    return this.#runner.version;
  }

  get stableVersion(): number | undefined {
    return this.#stable;
  }

  /** Whether this member's hand-offs for its current version have all settled. */
  get settled(): boolean {
    return this.#runner.done;
  }

  /** Hand-offs that acquired without the old owner's release (timed out). */
  get handoffTimeouts(): number {
    return this.#runner.timeouts;
  }

  /** Slots (partition·256 + rank) this member holds ready. */
  get held(): ReadonlySet<number> {
    return this.#runner.held;
  }

  async #register(): Promise<void> {
    const lease = this.#source.client.lease(this.#ttlSeconds);
    lease.on("lost", (error: Error) => {
      if (this.#lease !== lease || !this.#joined) return;
      this.#lease = undefined;
      this.#logger.warn({ err: error }, "lease lost; registering again");
      this.emit("lost", error);
      this.#retryRegister(200);
    });
    await lease.grant();
    this.#lease = lease;
    await this.#putMember(lease);
    await lease.put(keyOf(this.#source.config.prefix, "election", this.name)).value(this.name);
    // A new lease starts with no progress keys: write them again.
    this.#readyWritten = undefined;
    this.#runner.republish();
  }

  #retryRegister(delay: number): void {
    this.#cancelRetry = this.#clock.setTimer(() => {
      if (!this.#joined) return;
      this.#register().catch((error) => {
        this.#logger.warn({ err: error }, "registration failed; retrying");
        this.#retryRegister(Math.min(delay * 2, 5000));
      });
    }, delay);
  }

  async #putMember(lease: Lease): Promise<void> {
    const value = JSON.stringify({ url: this.#options.url, tags: this.#options.tags ?? {}, ready: this.#ready });
    await lease.put(keyOf(this.#source.config.prefix, "members", this.name)).value(value);
  }

  #onView(view: EtcdView): void {
    if (!this.#joined) return;
    this.#followLeader(view);
    const versions = [...view.versions.values()].sort((a, b) => a.version - b.version);
    const current = this.#runner.version;
    const next = current === undefined ? versions.slice(-1) : versions.filter((v) => v.version > current);
    for (const doc of next) this.#take(doc);
    this.#runner.recheck();
    if (view.stable !== undefined && view.stable !== this.#stable) {
      this.#stable = view.stable;
      this.#logger.info({ version: view.stable }, "version stable");
      try {
        this.#options.onStable?.(view.stable);
      } catch (error) {
        this.#logger.error({ err: error }, "onStable threw");
      }
      this.emit("stable", view.stable);
    }
    if (this.isLeader()) void this.#lead();
  }

  #take(doc: VersionDoc): void {
    try {
      this.#runner.apply(doc);
      this.#logger.info(
        { version: doc.version, members: doc.members.length, checksum: doc.checksum },
        "version taken up",
      );
    } catch (error) {
      this.#logger.error({ err: error, version: doc.version }, "cannot take up version");
    }
  }

  #followLeader(view: EtcdView): void {
    let leader: string | undefined;
    let lowest: bigint | undefined;
    for (const [name, revision] of view.election) {
      if (lowest === undefined || revision < lowest) {
        lowest = revision;
        leader = name;
      }
    }
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#logger.info({ leader }, leader === this.name ? "became leader" : "leader changed");
    this.emit("leader", leader === this.name, leader);
  }

  /** The leader's duties, one pass at a time: publish a version for a changed membership, mark a finished one stable. */
  async #lead(): Promise<void> {
    if (this.#leading) {
      this.#leadAgain = true;
      return;
    }
    this.#leading = true;
    try {
      do {
        this.#leadAgain = false;
        await this.#leadOnce();
      } while (this.#leadAgain && this.isLeader());
    } catch (error) {
      this.#logger.warn({ err: error }, "leader step failed; retrying on the next change");
    } finally {
      this.#leading = false;
    }
  }

  async #leadOnce(): Promise<void> {
    const source = this.#source;
    const { client, config } = source;
    const view = source.view;
    const eligible = [...view.members.values()]
      .filter((m) => m.ready && source.admits(m))
      .map((m) => m.name)
      .sort();
    const latest = source.latestVersion();
    if (
      latest === undefined ||
      latest.members.join("\n") !== eligible.join("\n") ||
      JSON.stringify(latest.ring) !== JSON.stringify(this.#ringConfig)
    ) {
      const version = (latest?.version ?? 0) + 1;
      const ring = Ring.build(eligible, this.#ringConfig);
      const doc: VersionDoc = {
        version,
        members: eligible,
        previous: latest?.members ?? [],
        ring: ring.config,
        checksum: ring.checksum,
      };
      const key = keyOf(config.prefix, "versions", version);
      const result = await client
        .if(key, "Create", "==", 0)
        .then(client.put(key).value(JSON.stringify(doc)))
        .commit();
      if (result.succeeded) {
        this.#logger.info({ version, members: eligible, checksum: ring.checksum }, "version published");
        for (const old of view.versions.keys()) {
          if (old < version - 4) await client.delete().key(keyOf(config.prefix, "versions", old));
        }
      }
      return;
    }
    if (view.stable !== latest.version && latest.members.every((m) => view.ready.get(m) === latest.version)) {
      await client.put(stableKey(config.prefix)).value(String(latest.version));
      this.#logger.info({ version: latest.version }, "version marked stable");
    }
  }

  /** Writes the newest progress document (and `ready/<name>` once a version is done), one write at a time. */
  #publish(doc: HandoffDoc, done: boolean): void {
    this.#pending = { doc, done };
    this.#flush();
  }

  #flush(): void {
    const lease = this.#lease;
    if (this.#writing || this.#pending === undefined || lease === undefined || !this.#joined) return;
    const { doc, done } = this.#pending;
    this.#pending = undefined;
    this.#writing = true;
    const prefix = this.#source.config.prefix;
    void (async () => {
      let failed = false;
      try {
        await lease.put(keyOf(prefix, "handoff", this.name)).value(JSON.stringify(doc));
        if (done && this.#readyWritten !== doc.version) {
          await lease.put(keyOf(prefix, "ready", this.name)).value(String(doc.version));
          this.#readyWritten = doc.version;
        }
      } catch (error) {
        this.#logger.warn({ err: error, version: doc.version }, "cannot write hand-off progress; retrying");
        this.#pending ??= { doc, done };
        failed = true;
      } finally {
        this.#writing = false;
        if (failed) this.#clock.setTimer(() => this.#flush(), 200);
        else this.#flush();
      }
    })();
  }
}
