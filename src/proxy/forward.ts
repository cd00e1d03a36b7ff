/**
 * Forwarding one request: an undici Pool per member (keep-alive, no
 * pipelining), bodies streamed both ways with backpressure, and failover to
 * the next member of the key's preference list when a member fails before
 * answering.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Dispatcher } from "undici";
import { Pool } from "undici";
import type { Cluster } from "../cluster.ts";
import type { ProxyConfig } from "../config.ts";
import type { Ring } from "../ring/ring.ts";
import { type Ejections, nextChoice } from "./failover.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "./headers.ts";
import { originForm } from "./key.ts";
import type { ProxyObserver, UpstreamFailure } from "./observer.ts";
import { replyError } from "./reply.ts";

/** A member's connection pool, and where its requests go. */
export interface Upstream {
  name: string;
  url: string;
  /** The member URL's path, without a trailing slash, put before every request path ("" for none). */
  prefix: string;
  pool: Pool;
}

/** One Pool per member, made on first use and closed when the member leaves or its URL changes. */
export class Upstreams {
  readonly #upstreams = new Map<string, Upstream>();

  constructor(
    readonly cluster: Cluster,
    readonly config: ProxyConfig,
  ) {}

  get(name: string): Upstream | undefined {
    const member = this.cluster.member(name);
    if (member === undefined) return undefined;
    const current = this.#upstreams.get(name);
    if (current !== undefined && current.url === member.url) return current;
    if (current !== undefined) void current.pool.close().catch(() => {});
    const url = new URL(member.url);
    const { timeouts, connections } = this.config;
    const upstream: Upstream = {
      name,
      url: member.url,
      prefix: url.pathname.replace(/\/+$/, ""),
      pool: new Pool(url.origin, {
        connections,
        pipelining: 1,
        connectTimeout: timeouts.connect,
        headersTimeout: timeouts.response,
        bodyTimeout: timeouts.response,
        keepAliveTimeout: timeouts.keepAlive,
      }),
    };
    this.#upstreams.set(name, upstream);
    return upstream;
  }

  /** Closes the pool of a member that left; requests in flight on it finish first. */
  drop(name: string): void {
    const upstream = this.#upstreams.get(name);
    if (upstream === undefined) return;
    this.#upstreams.delete(name);
    void upstream.pool.close().catch(() => {});
  }

  async close(): Promise<void> {
    const pools = [...this.#upstreams.values()].map((u) => u.pool);
    this.#upstreams.clear();
    await Promise.all(pools.map((pool) => pool.close().catch(() => {})));
  }

  async destroy(): Promise<void> {
    const pools = [...this.#upstreams.values()].map((u) => u.pool);
    this.#upstreams.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => {})));
  }
}

/** What every exchange shares: settings compiled once, the pools, ejection state. */
export interface ForwardContext {
  config: ProxyConfig;
  upstreams: Upstreams;
  ejections: Ejections;
  observer: ProxyObserver | undefined;
  /** retryStatus[s]: whether status s moves a request on to the next member. */
  retryStatus: Uint8Array;
  retryOnConnect: boolean;
  retryOnReset: boolean;
  retryOnTimeout: boolean;
  retryMethods: ReadonlySet<string>;
}

export function forwardContext(
  config: ProxyConfig,
  upstreams: Upstreams,
  ejections: Ejections,
  observer: ProxyObserver | undefined,
): ForwardContext {
  const retryStatus = new Uint8Array(600);
  for (const condition of config.retry.on) if (typeof condition === "number") retryStatus[condition] = 1;
  return {
    config,
    upstreams,
    ejections,
    observer,
    retryStatus,
    retryOnConnect: config.retry.on.includes("connect-failure"),
    retryOnReset: config.retry.on.includes("reset"),
    retryOnTimeout: config.retry.on.includes("timeout"),
    retryMethods: new Set(config.retry.methods),
  };
}

const connectCodes = new Set([
  "ECONNREFUSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);

/** Sorts an undici error into the reasons failover and metrics know. */
export function failureOf(error: unknown): UpstreamFailure {
  const e = error as NodeJS.ErrnoException | undefined;
  const code = e?.code ?? "";
  if (connectCodes.has(code) || e?.syscall === "connect") return "connect";
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") return "timeout";
  if (code === "UND_ERR_SOCKET" || code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_CLOSED") {
    return "reset";
  }
  return "error";
}

/**
 * One client request and the attempts made for it. The first attempt goes
 * to `member`; each failure that allows it moves on along the preference
 * list, up to `retry.attempts` more members.
 */
export class Exchange {
  readonly #ctx: ForwardContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #ring: Ring;
  /** The key's partition, or -1 for a request without a key. */
  readonly #partition: number;
  readonly #started: number;
  readonly #path: string;
  readonly #headers: string[];
  readonly #hasBody: boolean;
  /** Members tried so far, the current one last. */
  readonly #tried: string[] = [];
  #attempt: Attempt | undefined;

  constructor(ctx: ForwardContext, req: IncomingMessage, res: ServerResponse, ring: Ring, partition: number) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#ring = ring;
    this.#partition = partition;
    this.#started = ctx.observer === undefined ? 0 : performance.now();
    this.#path = originForm(req.url ?? "/");
    this.#headers = [];
    this.#hasBody = upstreamRequestHeaders(req, ctx.config.headers.forwarded, this.#headers);
  }

  get res(): ServerResponse {
    return this.#res;
  }

  send(member: string): void {
    this.#tried.push(member);
    const upstream = this.#ctx.upstreams.get(member);
    if (upstream === undefined) {
      // Left the cluster between lookup and now: as if its connection was refused.
      this.failed(undefined, member, "connect", new Error(`member ${member} is gone`));
      return;
    }
    const attempt = new Attempt(this, member);
    this.#attempt = attempt;
    const options: Dispatcher.DispatchOptions = {
      method: this.#req.method as Dispatcher.HttpMethod,
      path: upstream.prefix === "" ? this.#path : upstream.prefix + this.#path,
      headers: this.#headers,
      body: this.#hasBody ? this.#req : null,
    };
    try {
      upstream.pool.dispatch(options, attempt);
    } catch (error) {
      this.failed(attempt, member, "error", error);
    }
  }

  /** The member's response can go to the client, or `attempt` is retried instead (returns false). */
  respond(attempt: Attempt, status: number, rawHeaders: Buffer[], statusText: string): boolean {
    if (attempt !== this.#attempt) return false;
    const ctx = this.#ctx;
    if (ctx.retryStatus[status] === 1) {
      ctx.observer?.upstreamError(attempt.member, "status");
      if (ctx.ejections.failure(attempt.member)) ctx.observer?.ejection(attempt.member);
      if (this.#retry(attempt.member, false)) return false;
    } else {
      ctx.ejections.success(attempt.member);
    }
    const headers = clientResponseHeaders(rawHeaders);
    if (ctx.config.headers.ringInfo) {
      if (this.#partition >= 0) headers.push("x-ringroute-partition", String(this.#partition));
      headers.push("x-ringroute-member", attempt.member);
    }
    const res = this.#res;
    if (statusText === "") res.writeHead(status, headers);
    else res.writeHead(status, statusText, headers);
    return true;
  }

  completed(attempt: Attempt, last: Buffer | undefined): void {
    if (last === undefined) this.#res.end();
    else this.#res.end(last);
    if (this.#ctx.observer !== undefined) {
      const seconds = (performance.now() - this.#started) / 1000;
      this.#ctx.observer.request(attempt.member, this.#req.method ?? "GET", this.#res.statusCode, seconds);
    }
  }

  /** An attempt failed (`attempt` undefined: it never started). */
  failed(attempt: Attempt | undefined, member: string, reason: UpstreamFailure, error: unknown): void {
    if (attempt !== undefined && attempt !== this.#attempt) return;
    const ctx = this.#ctx;
    const res = this.#res;
    if (res.destroyed && !res.writableFinished) return; // the client went away; nobody to answer
    ctx.observer?.upstreamError(member, reason);
    if (reason !== "error" && ctx.ejections.failure(member)) ctx.observer?.ejection(member);
    if (res.headersSent) {
      // The response had begun: all that is left is to cut it short.
      res.destroy(error as Error);
      return;
    }
    const retryable =
      (reason === "connect" && ctx.retryOnConnect) ||
      (reason === "reset" && ctx.retryOnReset) ||
      (reason === "timeout" && ctx.retryOnTimeout);
    if (retryable) {
      if (this.#hasBody && this.#req.readableDidRead) {
        this.#reply(
          502,
          "body_not_replayable",
          `member ${member} failed (${reason}) after the request body was sent; it cannot be replayed`,
          member,
        );
        return;
      }
      // Nothing reached a member that refused the connection, so any method may go on; otherwise only the configured ones.
      if (this.#retry(member, reason === "connect")) return;
    }
    if (reason === "timeout") {
      this.#reply(
        504,
        "upstream_timeout",
        `member ${member} did not answer within ${ctx.config.timeouts.response} ms`,
        member,
      );
    } else {
      const what =
        reason === "connect"
          ? "could not be reached"
          : reason === "reset"
            ? "closed the connection before answering"
            : "failed";
      this.#reply(502, "bad_gateway", `member ${member} ${what}: ${(error as Error)?.message ?? error}`, member);
    }
  }

  /** Sends the request to the next member, if the policy and the preference list allow; false if not. */
  #retry(failed: string, anyMethod: boolean): boolean {
    const ctx = this.#ctx;
    if (this.#tried.length > ctx.config.retry.attempts) return false;
    if (!anyMethod && !ctx.retryMethods.has(this.#req.method ?? "")) return false;
    if (this.#hasBody && this.#req.readableDidRead) return false;
    const next = nextChoice(this.#ring, this.#partition, this.#tried, ctx.ejections);
    if (next === undefined || next === failed) return false;
    ctx.observer?.failover();
    this.send(next);
    return true;
  }

  #reply(status: number, code: string, message: string, member: string): void {
    replyError(this.#res, status, code, message, {
      member,
      tried: this.#tried,
      ...(this.#partition >= 0 ? { partition: this.#partition } : {}),
    });
    if (this.#ctx.observer !== undefined) {
      const seconds = (performance.now() - this.#started) / 1000;
      this.#ctx.observer.request(member, this.#req.method ?? "GET", status, seconds);
    }
  }
}

/**
 * One try against one member: an undici dispatch handler (the callback API,
 * the cheapest undici offers). A discarded attempt (its status triggered a
 * retry) drains quietly so its connection can be reused.
 */
class Attempt implements Dispatcher.DispatchHandler {
  readonly #exchange: Exchange;
  readonly member: string;
  #abort: ((error?: Error) => void) | undefined;
  #discarded = false;
  #resume: (() => void) | undefined;
  /**
   * The latest body chunk, held back one step: a response that arrives in
   * one piece then goes out as a single `end(chunk)`, headers and body in
   * one write, instead of a write and an end.
   */
  #held: Buffer | undefined;

  constructor(exchange: Exchange, member: string) {
    this.#exchange = exchange;
    this.member = member;
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true; // informational; the final response follows
    const res = this.#exchange.res;
    if (res.destroyed) {
      this.#discarded = true;
      this.#abort?.();
      return false;
    }
    if (!this.#exchange.respond(this, status, rawHeaders, statusText)) {
      this.#discarded = true;
      return true;
    }
    this.#resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#discarded) return true;
    const res = this.#exchange.res;
    if (res.destroyed) {
      this.#discarded = true;
      this.#abort?.();
      return false;
    }
    const held = this.#held;
    this.#held = chunk;
    if (held === undefined || res.write(held)) return true;
    // The client reads slower than the member sends: pause until it drains (or goes away).
    const resume = this.#resume as () => void;
    const onDrain = () => {
      res.off("close", onClose);
      resume();
    };
    const onClose = () => {
      res.off("drain", onDrain);
      this.#discarded = true;
      this.#abort?.();
    };
    res.once("drain", onDrain);
    res.once("close", onClose);
    return false;
  }

  onComplete(): void {
    if (this.#discarded) return;
    const held = this.#held;
    this.#held = undefined;
    this.#exchange.completed(this, held);
  }

  onError(error: Error): void {
    if (this.#discarded) return;
    this.#exchange.failed(this, this.member, failureOf(error), error);
  }
}
