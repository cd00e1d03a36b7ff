import { EventEmitter } from "node:events";
import type { Lease } from "etcd3";
import { type HandoffHandlers, HandoffRunner } from "../../handoff/runner.ts";
import { fromLists } from "../../handoff/slots.ts";
import { Ring, type RingConfig } from "../../ring/ring.ts";
import { type Clock, systemClock } from "../../utils/clock.ts";
import { type Logger, silentLogger } from "../../utils/logger.ts";
import { type HandoffDoc, memberDocument, parseNumber, type VersionDoc } from "./documents.ts";
import { keyOf, stableKey } from "./keys.ts";
import { LeaseWatch } from "./lease-watch.ts";
import type { EtcdSource, EtcdView } from "./source.ts";

export interface EtcdMemberOptions {
  /** The member's unique name: its key is `<prefix>members/<name>`. */
  name: string;
  /** Where the proxy sends this member's requests. */
  url: string;
  tags?: Record<string, string>;
  /** How proxies talk to this member: "h2c" (HTTP/2 in cleartext, gRPC servers) or "h1" (HTTP/1.1). Default "h1". */
  protocol?: "h1" | "h2c";
  /** Lease TTL in milliseconds, rounded up to whole seconds (etcd's unit). Default 10 s. */
  ttl?: number;
  /** Whether the member joins ready (in the ring). Default true. */
  ready?: boolean;
  /** What to do with partitions that move to or from this member. Default: nothing to move. */
  handoff?: HandoffHandlers;
  /**
   * Milliseconds a release or acquire handler may run before it is given up
   * (its signal fires, the step counts as done with an error); also how long
   * a new owner waits for an old owner without a hand-off document before
   * acquiring anyway. Default: the source's (30 s).
   */
  handoffTimeout?: number;
  /** Milliseconds `leave()` waits, drained, for its partitions to be ready elsewhere before revoking. Default 30 s. */
  leaveTimeout?: number;
  /** The ring settings the leader publishes with each version. Default: defaultRingConfig(). */
  ring?: Partial<RingConfig>;
  /** Runs on every member when a version becomes stable (every member of it finished its hand-offs). */
  onStable?: (version: number) => void;
  /**
   * Runs when the member is fenced: it lost its lease, or could not reach
   * etcd for a lease TTL. It holds nothing from then on (`holds` answers
   * false) and must stop serving its partitions; it registers again by
   * itself and gets partitions back only through hand-offs.
   */
  onFenced?: (reason: string) => void;
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
 * change of leader; `stable` (version) as `onStable`; `fenced` (reason) as
 * `onFenced`; `lost` (error) when the lease expired and the member registers
 * again (after `fenced`).
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
  /** The newest version whose progress document is in the store, and those waiting for one. */
  #docWritten = 0;
  #docWaiters = new Set<{ version: number; resolve(): void }>();
  #cancelRetry: (() => void) | undefined;
  #watch: LeaseWatch | undefined;
  /** The store revision of this registration's member key: views older than it are not acted on. */
  #registeredAt = 0n;
  /** The leave in progress: a second call waits for the same one. */
  #left: Promise<void> | undefined;
  /** Set while `leave()` waits for the partitions to be ready elsewhere. */
  #leaving: (() => void) | undefined;

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

  /**
   * Leaves without losing anything: drains (`setReady(false)`), waits until
   * every partition it gave up is ready at its new owner (or `leaveTimeout`
   * passes, or it holds nothing and no version is published), then revokes
   * the lease, so etcd deletes every key of this member at once.
   */
  leave(): Promise<void> {
    this.#left ??= this.#leave().finally(() => {
      this.#left = undefined;
    });
    return this.#left;
  }

  async #leave(): Promise<void> {
    if (!this.#joined) return;
    if (this.#lease !== undefined && this.#runner.version !== undefined) {
      const timeout = this.#options.leaveTimeout ?? 30_000;
      this.#logger.info({ leaveTimeout: timeout }, "leaving: draining first");
      await this.setReady(false).catch((error) => this.#logger.warn({ err: error }, "cannot drain; leaving anyway"));
      const handedOver = await new Promise<boolean>((resolve) => {
        const cancel = this.#clock.setTimer(() => done(false), timeout);
        const done = (ok: boolean) => {
          cancel();
          this.#leaving = undefined;
          resolve(ok);
        };
        this.#leaving = () => {
          if (this.#handedOver()) done(true);
        };
        this.#leaving();
      });
      if (handedOver) this.#logger.info("partitions ready elsewhere; revoking the lease");
      else
        this.#logger.warn(
          { leaveTimeout: timeout },
          "partitions not ready elsewhere within leaveTimeout; leaving anyway",
        );
    }
    if (!this.#joined) return;
    this.#joined = false;
    this.#unlisten?.();
    this.#cancelRetry?.();
    this.#watch?.stop();
    this.#runner.stop();
    this.#docWrittenFor();
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.revoke().catch((error) => this.#logger.warn({ err: error }, "lease revoke failed; it will expire"));
  }

  /** Drained: the latest version leaves this member out, its hand-offs are done, and each slot it let go is ready at its new owner. */
  #handedOver(): boolean {
    const view = this.#source.view;
    const latest = this.#source.latestVersion();
    if (latest === undefined || latest.members.includes(this.name)) return false;
    if (this.#runner.version !== latest.version || !this.#runner.done || this.#runner.held.size > 0) return false;
    if (latest.members.length === 0) return true;
    const ring = Ring.build(latest.members, latest.ring);
    const ready = new Map<string, Set<number>>();
    for (const slot of this.#runner.released.keys()) {
      const owner = ring.owner(Math.floor(slot / 256), slot % 256);
      if (owner === undefined) continue;
      let slots = ready.get(owner);
      if (slots === undefined) {
        const doc = view.handoff.get(owner);
        slots = doc !== undefined && doc.version >= latest.version ? fromLists(doc.ready) : new Set();
        ready.set(owner, slots);
      }
      if (!slots.has(slot)) return false;
    }
    return true;
  }

  /**
   * Whether this member holds (partition, rank) now: the answer an
   * application uses to decide whether to serve. True from the end of its
   * acquire until its release begins (even after a version moved it away:
   * proxies route it here until then); false while it is being acquired or
   * released, after the member was fenced, and after it left.
   */
  holds(partition: number, rank = 0): boolean {
    return this.#joined && this.#lease !== undefined && this.#runner.holds(partition, rank);
  }

  isLeader(): boolean {
    return this.#joined && this.#lease !== undefined && this.#leader === this.name;
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

  /** Hand-offs that acquired without the old owner's release (it had no hand-off document and timed out). */
  get handoffTimeouts(): number {
    return this.#runner.timeouts;
  }

  /** Release or acquire steps given up after `handoffTimeout` or whose handler threw (each logged as an error). */
  get handoffFailures(): number {
    return this.#runner.failures;
  }

  /** Each slot whose hand-off has not settled, and what it waits for (for diagnostics). */
  pendingHandoffs(): string[] {
    return this.#runner.pending();
  }

  /** Times this member was fenced (lost its lease or could not reach etcd for a TTL). */
  fencings = 0;

  /** Slots (partition·256 + rank) this member holds ready. */
  get held(): ReadonlySet<number> {
    return this.#runner.held;
  }

  async #register(): Promise<void> {
    const sentAt = this.#clock.now();
    const lease = this.#source.client.lease(this.#ttlSeconds);
    const watch = new LeaseWatch(this.#clock, this.#ttlSeconds * 1000, () =>
      this.#fence(lease, new Error(`no keepalive answered for a lease TTL (${this.#ttlSeconds} s)`)),
    );
    lease.on("keepaliveFired", () => watch.sent());
    lease.on("keepaliveSucceeded", () => watch.answered());
    lease.on("keepaliveEstablished", () => watch.reset());
    lease.on("lost", (error: Error) => this.#fence(lease, error));
    await lease.grant();
    if (!this.#joined) {
      lease.revoke().catch(() => {});
      return;
    }
    this.#watch?.stop();
    this.#watch = watch;
    watch.start(sentAt);
    // Progress left by an earlier life under this name (a restart within the
    // TTL, a fencing) must not claim anything for this one.
    const { client, config } = this.#source;
    await client.delete().key(keyOf(config.prefix, "handoff", this.name));
    await client.delete().key(keyOf(config.prefix, "ready", this.name));
    this.#registeredAt = await this.#putMember(lease);
    await lease.put(keyOf(config.prefix, "election", this.name)).value(this.name);
    if (!this.#joined || watch !== this.#watch) return;
    this.#lease = lease;
    if (watch.expired) return this.#fence(lease, new Error("registration took longer than the lease TTL"));
    // A new lease starts with no progress keys: write them again.
    this.#readyWritten = undefined;
    this.#runner.republish();
    if (this.#unlisten !== undefined) this.#onView(this.#source.view);
  }

  /**
   * The lease is gone, or may be: stop claiming partitions at once (held
   * set cleared, every running step's signal fired, `onFenced`), then
   * register again under a new lease, holding nothing.
   */
  #fence(lease: Lease, error: Error): void {
    if (this.#lease !== lease || !this.#joined) return;
    this.#lease = undefined;
    this.#watch?.stop();
    this.#watch = undefined;
    this.fencings++;
    this.#runner.fence();
    this.#pending = undefined;
    this.#docWritten = 0;
    this.#docWrittenFor(); // the steps waiting on it were dropped with the fencing
    lease.revoke().catch(() => {}); // if etcd still has it, its keys must not outlive the fencing
    this.#logger.warn({ err: error }, "fenced: lease lost; holding nothing, registering again");
    try {
      this.#options.onFenced?.(error.message);
    } catch (thrown) {
      this.#logger.error({ err: thrown }, "onFenced threw");
    }
    this.emit("fenced", error.message);
    this.emit("lost", error);
    this.#retryRegister(200);
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

  async #putMember(lease: Lease): Promise<bigint> {
    const { url, tags = {}, protocol } = this.#options;
    const value = memberDocument({ url, tags, ready: this.#ready, protocol });
    const response = await lease.put(keyOf(this.#source.config.prefix, "members", this.name)).value(value);
    return BigInt(response.header.revision);
  }

  #onView(view: EtcdView): void {
    if (!this.#joined) return;
    this.#followLeader(view);
    const versions = [...view.versions.values()].sort((a, b) => a.version - b.version);
    const current = this.#runner.version;
    const next = current === undefined ? versions.slice(-1) : versions.filter((v) => v.version > current);
    // Fenced (no lease): no version is taken up until registered again, and
    // then only from a view that includes the registration (a view read
    // before a cut-off would hand back partitions others have since taken).
    if (this.#lease !== undefined && view.revision >= this.#registeredAt) for (const doc of next) this.#take(doc);
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
    if (this.isLeader() && view.revision >= this.#registeredAt) void this.#lead();
    this.#leaving?.();
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
      // Forward only: a transaction on the value read, so a leader acting on
      // an old view (another took over meanwhile) never moves stable back.
      const key = stableKey(config.prefix);
      const current = await client.get(key).exec();
      const kv = current.kvs[0];
      const was = kv === undefined ? undefined : parseNumber(kv.value.toString());
      if (was !== undefined && was >= latest.version) return;
      const guard = kv === undefined ? client.if(key, "Create", "==", 0) : client.if(key, "Mod", "==", kv.mod_revision);
      const result = await guard.then(client.put(key).value(String(latest.version))).commit();
      if (result.succeeded) this.#logger.info({ version: latest.version, was }, "version marked stable");
    }
  }

  /** Writes the newest progress document (and `ready/<name>` once a version is done), one write at a time. */
  #publish(doc: HandoffDoc, done: boolean): Promise<void> {
    this.#pending = { doc, done };
    this.#flush();
    if (doc.version <= this.#docWritten) return Promise.resolve();
    return new Promise((resolve) => this.#docWaiters.add({ version: doc.version, resolve }));
  }

  /** A document of `version` is written (or, with none, nothing will be under this lease): its waiters go on. */
  #docWrittenFor(version = Number.POSITIVE_INFINITY): void {
    if (Number.isFinite(version)) this.#docWritten = Math.max(this.#docWritten, version);
    for (const waiter of this.#docWaiters) {
      if (waiter.version > version) continue;
      this.#docWaiters.delete(waiter);
      waiter.resolve();
    }
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
        if (this.#lease === lease) this.#docWrittenFor(doc.version);
        if (done && this.#readyWritten !== doc.version) {
          await lease.put(keyOf(prefix, "ready", this.name)).value(String(doc.version));
          this.#readyWritten = doc.version;
        }
      } catch (error) {
        this.#logger.warn({ err: error, version: doc.version }, "cannot write hand-off progress; retrying");
        // Only under the same lease: progress from before a fencing is never written again.
        if (this.#lease === lease) this.#pending ??= { doc, done };
        failed = true;
      } finally {
        this.#writing = false;
        if (failed) this.#clock.setTimer(() => this.#flush(), 200);
        else this.#flush();
      }
    })();
  }
}
