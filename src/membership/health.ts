import http from "node:http";
import https from "node:https";
import { type Clock, systemClock } from "../utils/clock.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { firstHealth, type HealthEvent, type HealthState, nextHealth } from "./health-state.ts";
import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

/** Active HTTP health checks: how often, how patient, how sure. */
export interface HealthCheckOptions {
  /** Path requested on each member, resolved against its URL. A 2xx or 3xx answer passes. */
  path: string;
  /** Milliseconds between checks of a member that is in (and of one on its way back in). */
  interval: number;
  /** Milliseconds a check may take, connecting included, before it counts as failed. */
  timeout: number;
  /** Consecutive passes that bring a member that is out back in. */
  rise: number;
  /** Consecutive failures that take a member that is in out of the ring. */
  fall: number;
  /**
   * Milliseconds between checks of a member that is out: a dead member is
   * retried slowly (Maggie's Cluster retries failed seeds every 10 s). The
   * first pass switches back to `interval` until `rise` is reached.
   */
  reconnectInterval: number;
}

/** The defaults: HAProxy-like rise 2 / fall 3, Maggie's 10 s reconnect. */
export function defaultHealthCheckOptions(): HealthCheckOptions {
  return { path: "/healthz", interval: 2000, timeout: 1000, rise: 2, fall: 3, reconnectInterval: 10_000 };
}

/**
 * Checks one URL once: resolves if healthy, rejects with the reason
 * otherwise. `signal` aborts it when the check's `timeout` (run on the
 * source's clock) has passed or the member went away.
 */
export type HealthProbe = (url: URL, timeout: number, signal: AbortSignal) => Promise<void>;

/**
 * One GET on a fresh connection (no keep-alive), so a check also proves the
 * member still accepts connections. The body is discarded. The deadline
 * for connecting and answering is the caller's: it aborts `signal`.
 */
export const httpProbe: HealthProbe = (url, _timeout, signal) =>
  new Promise<void>((resolve, reject) => {
    const get = url.protocol === "https:" ? https.get : http.get;
    const request = get(url, {
      agent: false,
      signal,
      headers: { "user-agent": "ringroute-health-check", connection: "close" },
    });
    request.on("error", reject);
    request.on("response", (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 400) resolve();
      else reject(new Error(`HTTP ${status}`));
      request.destroy();
    });
  });

export interface HealthCheckedSourceOptions extends Partial<HealthCheckOptions> {
  /** Replaces the HTTP check (tests, other protocols). */
  probe?: HealthProbe;
  /** Runs the check intervals and timeouts; default the system clock. */
  clock?: Clock;
  /** One entry per member going out or coming back in. Default: silent. */
  logger?: Logger;
}

interface Tracked {
  member: Member;
  health: HealthState;
  cancelTimer: (() => void) | undefined;
  /** The running check: aborting it also cancels its deadline. */
  inflight: AbortController | undefined;
}

/**
 * Wraps a source with active health checks. Members the inner source calls
 * alive are probed; one that fails `fall` checks in a row is reported
 * "failed" (leaves the ring) until it passes `rise` in a row.
 *
 * A member's first check decides where it starts: the snapshot that brings
 * a new member (at startup or later) waits for that one check (at most
 * `timeout`), so a member that is dead from the start never enters the ring
 * and a healthy one never waits `rise` intervals. Members the inner source
 * does not call alive are passed through and not probed.
 *
 * The rules live in ./health-state.ts; this class runs the checks and the
 * timers they ask for, on the injected clock.
 */
export class HealthCheckedSource implements MembershipSource {
  readonly options: Readonly<HealthCheckOptions>;
  readonly #inner: MembershipSource;
  readonly #probe: HealthProbe;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #sink: SnapshotSink | undefined;
  /** The inner source's latest snapshot; undefined until it delivers. */
  #latest: readonly Member[] | undefined;
  #tracked = new Map<string, Tracked>();
  #lastReported = "";
  /** Resolves start() once the first checked snapshot is out. */
  #firstReport: (() => void) | undefined;
  #stopped = false;

  constructor(inner: MembershipSource, options: HealthCheckedSourceOptions = {}) {
    const { probe, clock, logger, ...rest } = options;
    this.#inner = inner;
    this.options = Object.freeze({ ...defaultHealthCheckOptions(), ...definedOnly(rest) });
    this.#probe = probe ?? httpProbe;
    this.#clock = clock ?? systemClock;
    this.#logger = logger ?? silentLogger;
  }

  get kind(): string {
    return this.#inner.kind;
  }

  async start(sink: SnapshotSink): Promise<void> {
    this.#stopped = false;
    this.#sink = sink;
    const firstReport = new Promise<void>((resolve) => {
      this.#firstReport = resolve;
    });
    await this.#inner.start({
      snapshot: (members) => this.#onSnapshot(members),
      down: (error) => {
        if (this.#stopped) return;
        // The next snapshot is sent even if unchanged: it is what tells the Cluster the source is back.
        this.#lastReported = "";
        sink.down(error);
      },
    });
    // A source that delivered at start is reported once its members' first checks answer
    // (each bounded by `timeout`), so a started cluster is already synced.
    if (this.#latest !== undefined) await firstReport;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#firstReport?.();
    for (const tracked of this.#tracked.values()) cancel(tracked);
    this.#tracked.clear();
    await this.#inner.stop();
  }

  #onSnapshot(members: readonly Member[]): void {
    if (this.#stopped) return;
    this.#latest = members;
    const alive = new Map<string, Member>();
    for (const member of members) if (member.state === "alive") alive.set(member.name, member);
    for (const [name, tracked] of this.#tracked) {
      const now = alive.get(name);
      // Gone, no longer alive, or moved to another URL: forget what we knew.
      if (now === undefined || now.url !== tracked.member.url) {
        cancel(tracked);
        this.#tracked.delete(name);
      } else {
        tracked.member = now;
      }
    }
    const fresh: Tracked[] = [];
    for (const [name, member] of alive) {
      if (this.#tracked.has(name)) continue;
      const first = firstHealth(this.#clock.now());
      const tracked: Tracked = { member, health: first.state, cancelTimer: undefined, inflight: undefined };
      this.#tracked.set(name, tracked);
      fresh.push(tracked);
    }
    // Every new member is tracked before any check starts: a probe that answers at once must not report early.
    for (const tracked of fresh) this.#check(tracked);
    this.#report();
  }

  /** Feeds one event to a member's rules and carries out what they ask. */
  #step(tracked: Tracked, event: HealthEvent): void {
    if (this.#stopped || this.#tracked.get(tracked.member.name) !== tracked) return;
    const { state, actions } = nextHealth(tracked.health, event, this.#clock.now(), this.options);
    tracked.health = state;
    let report = false;
    for (const action of actions) {
      if (action.type === "check") this.#check(tracked);
      else if (action.type === "schedule") {
        tracked.cancelTimer?.();
        tracked.cancelTimer = this.#clock.setTimer(() => {
          tracked.cancelTimer = undefined;
          this.#step(tracked, { type: "due" });
        }, action.delay);
      } else if (action.type === "report") report = true;
      else {
        const { name, url } = tracked.member;
        const { passes, failures, lastError } = state;
        const fields =
          state.status === "up" ? { member: name, url, passes } : { member: name, url, failures, error: lastError };
        this.#logger[action.level](fields, action.message);
      }
    }
    if (report) this.#report();
  }

  /** Reports the inner snapshot with health applied, once every member's first check has answered. */
  #report(): void {
    if (this.#stopped || this.#latest === undefined || this.#sink === undefined) return;
    for (const tracked of this.#tracked.values()) if (tracked.health.status === "pending") return;
    const view = this.#latest.map((member) => {
      const tracked = this.#tracked.get(member.name);
      return tracked !== undefined && tracked.health.status === "down"
        ? { ...member, state: "failed" as const }
        : member;
    });
    // The inner source or a flip changed something; identical views are not re-sent.
    const fingerprint = JSON.stringify(view);
    if (fingerprint === this.#lastReported) return;
    this.#lastReported = fingerprint;
    this.#sink.snapshot(view);
    this.#firstReport?.();
    this.#firstReport = undefined;
  }

  /** Runs one check with its deadline on the clock; its answer goes back to the rules. */
  #check(tracked: Tracked): void {
    const controller = new AbortController();
    tracked.inflight = controller;
    const { timeout } = this.options;
    let done = false;
    const settle = (error: unknown) => {
      if (done) return;
      done = true;
      cancelDeadline();
      if (tracked.inflight !== controller) return; // cancelled: the member went away or the source stopped
      tracked.inflight = undefined;
      this.#step(tracked, error === undefined ? { type: "pass" } : { type: "fail", error: describe(error) });
    };
    const cancelDeadline = this.#clock.setTimer(() => {
      settle(new Error(`no answer within ${timeout} ms`));
      controller.abort();
    }, timeout);
    controller.signal.addEventListener("abort", () => settle(new Error("cancelled")));
    let url: URL;
    try {
      url = new URL(this.options.path, tracked.member.url);
    } catch (error) {
      settle(error);
      return;
    }
    this.#probe(url, timeout, controller.signal).then(
      () => settle(undefined),
      (error) => settle(error),
    );
  }
}

function cancel(tracked: Tracked): void {
  tracked.cancelTimer?.();
  const inflight = tracked.inflight;
  tracked.cancelTimer = undefined;
  tracked.inflight = undefined;
  inflight?.abort();
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(error);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
