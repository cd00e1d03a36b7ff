import http from "node:http";
import https from "node:https";
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

/** Checks one URL once: resolves if healthy, rejects with the reason otherwise. */
export type HealthProbe = (url: URL, timeout: number, signal: AbortSignal) => Promise<void>;

/**
 * One GET on a fresh connection (no keep-alive), so a check also proves the
 * member still accepts connections. The body is discarded.
 */
export const httpProbe: HealthProbe = (url, timeout, signal) =>
  new Promise<void>((resolve, reject) => {
    const get = url.protocol === "https:" ? https.get : http.get;
    const request = get(url, {
      agent: false,
      signal,
      headers: { "user-agent": "ringroute-health-check", connection: "close" },
    });
    // One deadline for connecting and answering: an idle timeout alone lets a trickling server stall a check.
    const deadline = setTimeout(() => request.destroy(new Error(`no answer within ${timeout} ms`)), timeout);
    const settle = (error?: Error) => {
      clearTimeout(deadline);
      if (error) reject(error);
      else resolve();
    };
    request.on("error", settle);
    request.on("response", (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      settle(status >= 200 && status < 400 ? undefined : new Error(`HTTP ${status}`));
      request.destroy();
    });
  });

export interface HealthCheckedSourceOptions extends Partial<HealthCheckOptions> {
  /** Replaces the HTTP check (tests, other protocols). */
  probe?: HealthProbe;
  /** One line per member going out or coming back in. */
  log?: (line: string) => void;
}

interface Tracked {
  member: Member;
  up: boolean;
  /** Whether the first check has answered; until then the member is not reported. */
  known: boolean;
  passes: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  inflight: AbortController | undefined;
  lastError: string;
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
 */
export class HealthCheckedSource implements MembershipSource {
  readonly options: Readonly<HealthCheckOptions>;
  readonly #inner: MembershipSource;
  readonly #probe: HealthProbe;
  readonly #log: (line: string) => void;
  #sink: SnapshotSink | undefined;
  /** The inner source's latest snapshot; undefined until it delivers. */
  #latest: readonly Member[] | undefined;
  #tracked = new Map<string, Tracked>();
  #lastReported = "";
  /** Resolves start() once the first checked snapshot is out. */
  #firstReport: (() => void) | undefined;
  #stopped = false;

  constructor(inner: MembershipSource, options: HealthCheckedSourceOptions = {}) {
    const { probe, log, ...rest } = options;
    this.#inner = inner;
    this.options = Object.freeze({ ...defaultHealthCheckOptions(), ...definedOnly(rest) });
    this.#probe = probe ?? httpProbe;
    this.#log = log ?? ((line) => process.stderr.write(`${line}\n`));
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
    for (const [name, member] of alive) {
      if (this.#tracked.has(name)) continue;
      const tracked: Tracked = {
        member,
        up: false,
        known: false,
        passes: 0,
        failures: 0,
        timer: undefined,
        inflight: undefined,
        lastError: "",
      };
      this.#tracked.set(name, tracked);
      this.#check(tracked);
    }
    this.#report();
  }

  /** Reports the inner snapshot with health applied, once every member's first check has answered. */
  #report(): void {
    if (this.#stopped || this.#latest === undefined || this.#sink === undefined) return;
    for (const tracked of this.#tracked.values()) if (!tracked.known) return;
    const view = this.#latest.map((member) => {
      const tracked = this.#tracked.get(member.name);
      return tracked !== undefined && !tracked.up ? { ...member, state: "failed" as const } : member;
    });
    // The inner source or a flip changed something; identical views are not re-sent.
    const fingerprint = JSON.stringify(view);
    if (fingerprint === this.#lastReported) return;
    this.#lastReported = fingerprint;
    this.#sink.snapshot(view);
    this.#firstReport?.();
    this.#firstReport = undefined;
  }

  #check(tracked: Tracked): void {
    tracked.timer = undefined;
    const controller = new AbortController();
    tracked.inflight = controller;
    let url: URL;
    try {
      url = new URL(this.options.path, tracked.member.url);
    } catch (error) {
      this.#settle(tracked, controller, error);
      return;
    }
    this.#probe(url, this.options.timeout, controller.signal).then(
      () => this.#settle(tracked, controller, undefined),
      (error) => this.#settle(tracked, controller, error),
    );
  }

  #settle(tracked: Tracked, controller: AbortController, error: unknown): void {
    // A member removed or re-added meanwhile has a new record; this answer is stale.
    if (this.#stopped || controller.signal.aborted || this.#tracked.get(tracked.member.name) !== tracked) return;
    tracked.inflight = undefined;
    const { name, url } = tracked.member;
    const passed = error === undefined;
    if (passed) {
      tracked.passes++;
      tracked.failures = 0;
    } else {
      tracked.failures++;
      tracked.passes = 0;
      tracked.lastError = describe(error);
    }
    const first = !tracked.known;
    tracked.known = true;
    const wasUp = tracked.up;
    if (first) tracked.up = passed;
    else if (wasUp && tracked.failures >= this.options.fall) tracked.up = false;
    else if (!wasUp && tracked.passes >= this.options.rise) tracked.up = true;

    if (first && !passed)
      this.#log(
        `ringroute: member ${name} (${url}) fails its health check (${tracked.lastError}); kept out of the ring`,
      );
    else if (wasUp && !tracked.up)
      this.#log(
        `ringroute: member ${name} (${url}) failed ${tracked.failures} health checks (${tracked.lastError}); out of the ring`,
      );
    else if (!wasUp && tracked.up && !first)
      this.#log(`ringroute: member ${name} (${url}) passed ${tracked.passes} health checks; back in the ring`);

    // A member that is out is retried slowly until it answers, then at the normal pace while it rises.
    const delay = !tracked.up && tracked.passes === 0 ? this.options.reconnectInterval : this.options.interval;
    tracked.timer = setTimeout(() => this.#check(tracked), delay);
    if (first || wasUp !== tracked.up) this.#report();
  }
}

function cancel(tracked: Tracked): void {
  if (tracked.timer !== undefined) clearTimeout(tracked.timer);
  tracked.inflight?.abort();
  tracked.timer = undefined;
  tracked.inflight = undefined;
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(error);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
