/**
 * The one configuration schema of `ringroute`: its fields, their defaults and
 * `parseConfig`, which validates a raw config (parsed YAML, with flags and
 * variables already merged in by src/commands/) field by field. The first bad
 * value throws a ConfigError naming its dotted field path (`ring.partitions`),
 * so the CLI prints one line and exits 2.
 */
import { ConfigError } from "./errors/config-error.ts";
import { type MembershipConfig, parseMembershipConfig } from "./membership/config.ts";
import { defaultRingConfig, parseBalanceFactor, type RingConfig, validateRingConfig, withCompat } from "./ring/ring.ts";
import { duration } from "./utils/duration.ts";
import { boolean, type HostPort, hostPort, integer, list, mapping, oneOf, show } from "./utils/fields.ts";

export type { HostPort } from "./utils/fields.ts";

/**
 * Where a request's key comes from, parsed from `key.from`: `path` (the URL
 * path without the query, percent-decoded: Go's `r.URL.Path`, as in libring's
 * example, but with dot-segments removed, as the member receives it),
 * `header:NAME` (NAME kept in lower case), `query:NAME`, `cookie:NAME`, or
 * `regex:PATTERN` (its first capture group, matched against that path).
 */
export type KeySource =
  | { kind: "path" }
  | { kind: "header"; name: string }
  | { kind: "query"; name: string }
  | { kind: "cookie"; name: string }
  | { kind: "regex"; pattern: string };

/** `key.from` as the user writes it: the inverse of parsing it. */
export function keySourceText(from: KeySource): string {
  return from.kind === "path" ? "path" : `${from.kind}:${from.kind === "regex" ? from.pattern : from.name}`;
}

/** Where a request's key comes from, and what to do without one. */
export interface KeyConfig {
  from: KeySource;
  /** `reject`: answer 400 when the key is absent. `any`: send the request to any live member. */
  missing: "reject" | "any";
  /** Longest key accepted, in characters; longer keys get 414 (path, query) or 431 (header, cookie). */
  maxLength: number;
}

/** What triggers failover besides status codes. */
export type RetryCondition = "connect-failure" | "reset" | "timeout";

export interface ProxyConfig {
  timeouts: {
    /** Milliseconds to open a connection to a member before trying the next one. */
    connect: number;
    /** Milliseconds to wait for a member's response headers, and between body chunks; then 504. */
    response: number;
    /** Milliseconds an idle keep-alive connection to a member stays open. */
    keepAlive: number;
    /** Milliseconds a client has to send a whole request head; then 408 and close. */
    head: number;
    /** Milliseconds a client's request body may stall between chunks; then 408, and the member's request is aborted. */
    body: number;
    /** Milliseconds a client's keep-alive connection may sit idle between requests. */
    clientIdle: number;
    /** Milliseconds an Upgrade tunnel (WebSocket, h2c…) may carry no bytes either way. */
    tunnel: number;
    /** Milliseconds a client may take no response bytes while a response waits for it; then the response is cut. */
    clientWrite: number;
    /** Milliseconds a request may wait for a free connection to its member; then 503 with Retry-After. */
    queue: number;
  };
  /** What a client's request head may hold. */
  limits: {
    /** Most header fields in a request (431) or in a member's response (502). */
    headers: number;
    /** Most bytes in a request head (request line and headers); more gets 431. */
    headerBytes: number;
    /** Longest request target, in bytes; longer gets 414. */
    url: number;
    /** Most bytes in a member's response head (status line and headers; trailers count too); more gets 502. */
    responseHeaderBytes: number;
  };
  /** Whether ringroute's own 5xx bodies include member addresses and errors (they always go to the log). */
  errors: { detail: boolean };
  /** Most connections held open to one member (undici Pool size). */
  connections: number;
  retry: {
    /** Further members tried after the first one fails (0: no failover). */
    attempts: number;
    /** Failures that move a request on to the next member: conditions and response status codes. */
    on: (RetryCondition | number)[];
    /** Methods that may be resent after a member may have seen them (upper case). */
    methods: string[];
    /**
     * gRPC methods (`/pkg.Service/Method`, or `/pkg.Service/*` for a whole service) that may be resent after
     * a member may have seen them, as long as no response headers came back (gRFC A6). Default none: only calls
     * the member cannot have processed (connect failure, REFUSED_STREAM, GOAWAY) move on.
     */
    grpcMethods: string[];
  };
  /** Passive ejection: a member that fails `after` times in a row is skipped for `for` milliseconds. */
  eject: { after: number; for: number };
  headers: {
    /** Add X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host to forwarded requests. */
    forwarded: boolean;
    /** Add x-ringroute-partition and x-ringroute-member to responses. */
    ringInfo: boolean;
    /**
     * Send members x-ringroute-partition, -rank and -version with each keyed
     * request; `auto`: under coordinated hand-offs only. Whatever x-ringroute-*
     * headers a client sends are dropped either way.
     */
    ownership: boolean | "auto";
  };
}

export interface Config {
  /** Where the proxy accepts traffic. */
  listen: HostPort;
  /** Where the admin server (metrics, health, ring, events) listens; loopback by default. */
  admin: HostPort;
  ring: RingConfig;
  key: KeyConfig;
  /** Where members come from; absent means `serve` starts three in-process demo backends. */
  membership: MembershipConfig | undefined;
  proxy: ProxyConfig;
  /** Milliseconds in-flight requests get to finish on SIGTERM/SIGINT before connections are cut. */
  shutdownTimeout: number;
  /** Milliseconds to keep serving after SIGTERM with /readyz at 503, so load balancers notice first. */
  shutdownDelay: number;
  /** What /readyz answers while the membership source is down: `ready` keeps routing on the last good view. */
  readiness: { sourceDown: "ready" | "unready" };
  /** Proxy processes: a number, or `auto` for one per available core. */
  workers: number | "auto";
  log: {
    /** pino level: fatal, error, warn, info, debug, trace, silent. */
    level: LogLevel;
    /** `json` (one object a line) or `pretty` (for people); default pretty when stderr is a terminal. */
    format: "json" | "pretty" | "auto";
  };
  metrics: {
    /** Milliseconds a departed member's series (requests, errors, ejections) are kept before they are dropped. */
    memberRetention: number;
  };
  access: {
    /** One JSON line a request on stdout. */
    log: boolean;
    /** Fraction of requests logged, 0 < sample ≤ 1. */
    sample: number;
  };
  /** PEM files for HTTPS on `listen`; absent means plain HTTP. Reloaded on SIGHUP. */
  tls: { cert: string; key: string; ca?: string } | undefined;
  /**
   * Whether clients may speak HTTP/2: h2 by ALPN over TLS, h2c with prior knowledge (the connection preface)
   * in clear text. Off: the listener speaks HTTP/1.1 only (an h2 preface gets 400). Applies to new
   * connections on reload.
   */
  http2: boolean;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** The defaults, field by field; `ringroute serve` with no config uses exactly these. */
export function defaultConfig(): Config {
  return {
    listen: { host: "0.0.0.0", port: 8080 },
    admin: { host: "127.0.0.1", port: 9090 },
    ring: defaultRingConfig(),
    key: { from: { kind: "path" }, missing: "reject", maxLength: 4096 },
    membership: undefined,
    proxy: {
      timeouts: {
        connect: 2_000,
        response: 30_000,
        keepAlive: 4_000,
        head: 10_000,
        body: 30_000,
        clientIdle: 5_000,
        tunnel: 3_600_000,
        clientWrite: 60_000,
        queue: 10_000,
      },
      limits: { headers: 100, headerBytes: 16_384, url: 8_192, responseHeaderBytes: 65_536 },
      errors: { detail: false },
      connections: 128,
      retry: {
        attempts: 2,
        on: ["connect-failure", "reset", 502, 503],
        methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"],
        grpcMethods: [],
      },
      eject: { after: 5, for: 10_000 },
      headers: { forwarded: true, ringInfo: false, ownership: "auto" },
    },
    shutdownTimeout: 10_000,
    shutdownDelay: 0,
    readiness: { sourceDown: "ready" },
    workers: 1,
    log: { level: "info", format: "auto" },
    metrics: { memberRetention: 3_600_000 },
    access: { log: true, sample: 1 },
    tls: undefined,
    http2: true,
  };
}

/**
 * Validates a raw config (parsed YAML with overrides merged in) field by
 * field. Numbers, booleans and durations may also be strings, as they arrive
 * from flags and the environment.
 */
export function parseConfig(raw: unknown): Config {
  const config = defaultConfig();
  const root = mapping(raw, "", [
    "listen",
    "admin",
    "ring",
    "key",
    "membership",
    "proxy",
    "shutdownTimeout",
    "shutdownDelay",
    "readiness",
    "workers",
    "log",
    "metrics",
    "access",
    "tls",
    "http2",
  ]);
  if (root.listen !== undefined) config.listen = hostPort(root.listen, "listen");
  if (root.admin !== undefined) config.admin = hostPort(root.admin, "admin");

  config.ring = parseRing(root.ring ?? {}, "ring");

  if (root.key !== undefined) {
    const key = mapping(root.key, "key", ["from", "missing", "maxLength"]);
    if (key.from !== undefined) config.key.from = keySource(key.from, "key.from");
    if (key.missing !== undefined) config.key.missing = oneOf(key.missing, "key.missing", ["reject", "any"] as const);
    if (key.maxLength !== undefined) config.key.maxLength = integer(key.maxLength, "key.maxLength", 1);
  }

  if (root.membership !== undefined) config.membership = parseMembershipConfig(root.membership, "membership");
  // ring.compat: libring also means libring's Serf tag rule, unless the serf section says otherwise.
  const serf = config.membership?.serf;
  const rawSerf = (root.membership as { serf?: { tagMatch?: unknown } | null } | undefined)?.serf;
  if (config.ring.compat === "libring" && serf !== undefined && rawSerf?.tagMatch === undefined) serf.tagMatch = "any";

  if (root.proxy !== undefined) parseProxy(root.proxy, config.proxy);
  if (root.shutdownTimeout !== undefined)
    config.shutdownTimeout = duration(root.shutdownTimeout, "shutdownTimeout", { zero: true });
  if (root.shutdownDelay !== undefined)
    config.shutdownDelay = duration(root.shutdownDelay, "shutdownDelay", { zero: true });
  if (root.readiness !== undefined) {
    const r = mapping(root.readiness, "readiness", ["sourceDown"]);
    if (r.sourceDown !== undefined)
      config.readiness.sourceDown = oneOf(r.sourceDown, "readiness.sourceDown", ["ready", "unready"] as const);
  }
  if (root.workers !== undefined) {
    config.workers = root.workers === "auto" ? "auto" : integer(root.workers, "workers", 1);
  }
  if (root.log !== undefined) {
    const l = mapping(root.log, "log", ["level", "format"]);
    if (l.level !== undefined) config.log.level = oneOf(l.level, "log.level", logLevels);
    if (l.format !== undefined) config.log.format = oneOf(l.format, "log.format", ["json", "pretty", "auto"] as const);
  }
  if (root.metrics !== undefined) {
    const m = mapping(root.metrics, "metrics", ["memberRetention"]);
    if (m.memberRetention !== undefined)
      config.metrics.memberRetention = duration(m.memberRetention, "metrics.memberRetention", { zero: true });
  }
  if (root.access !== undefined) {
    const a = mapping(root.access, "access", ["log", "sample"]);
    if (a.log !== undefined) config.access.log = boolean(a.log, "access.log");
    if (a.sample !== undefined) {
      const sample = typeof a.sample === "string" ? Number(a.sample) : a.sample;
      if (typeof sample !== "number" || !(sample > 0 && sample <= 1)) {
        throw new ConfigError("access.sample", `must be a number in (0, 1], got ${show(a.sample)}`);
      }
      config.access.sample = sample;
    }
  }
  if (root.http2 !== undefined) config.http2 = boolean(root.http2, "http2");
  if (root.tls !== undefined && root.tls !== null) {
    const t = mapping(root.tls, "tls", ["cert", "key", "ca"]);
    const file = (value: unknown, field: string): string => {
      if (typeof value !== "string" || value === "")
        throw new ConfigError(field, `must be a file path, got ${show(value)}`);
      return value;
    };
    config.tls = { cert: file(t.cert, "tls.cert"), key: file(t.key, "tls.key") };
    if (t.ca !== undefined) config.tls.ca = file(t.ca, "tls.ca");
  }
  return config;
}

/** The `ring` section: the one place ring settings are read, for `serve`, `check`, `lookup` and `plan`. */
export function parseRing(raw: unknown, path: string): RingConfig {
  const config = defaultRingConfig();
  const ring = mapping(raw, path, [
    "partitions",
    "replicas",
    "hash",
    "placement",
    "order",
    "balanceFactor",
    "vnodes",
    "compat",
  ]);
  if (ring.partitions !== undefined) config.partitions = integer(ring.partitions, `${path}.partitions`, 1);
  if (ring.replicas !== undefined) config.replicas = integer(ring.replicas, `${path}.replicas`, 1, 255);
  if (ring.hash !== undefined) config.hash = ring.hash as RingConfig["hash"];
  if (ring.placement !== undefined) config.placement = ring.placement as RingConfig["placement"];
  if (ring.order !== undefined) config.order = ring.order as RingConfig["order"];
  if (ring.balanceFactor !== undefined) {
    config.balanceFactor = parseBalanceFactor(ring.balanceFactor, `${path}.balanceFactor`);
  }
  if (ring.vnodes !== undefined) config.vnodes = integer(ring.vnodes, `${path}.vnodes`, 1);
  if (ring.compat !== undefined) config.compat = ring.compat as RingConfig["compat"];
  return validateRingConfig(withCompat(config, ring, `${path}.`), `${path}.`);
}

function parseProxy(raw: unknown, proxy: ProxyConfig): void {
  const s = mapping(raw, "proxy", ["timeouts", "limits", "errors", "connections", "retry", "eject", "headers"]);
  if (s.timeouts !== undefined) {
    const names = [
      "connect",
      "response",
      "keepAlive",
      "head",
      "body",
      "clientIdle",
      "tunnel",
      "clientWrite",
      "queue",
    ] as const;
    const t = mapping(s.timeouts, "proxy.timeouts", [...names]);
    for (const name of names) {
      if (t[name] !== undefined) proxy.timeouts[name] = duration(t[name], `proxy.timeouts.${name}`);
    }
  }
  if (s.limits !== undefined) {
    const l = mapping(s.limits, "proxy.limits", ["headers", "headerBytes", "url", "responseHeaderBytes"]);
    if (l.headers !== undefined) proxy.limits.headers = integer(l.headers, "proxy.limits.headers", 1);
    if (l.headerBytes !== undefined) proxy.limits.headerBytes = integer(l.headerBytes, "proxy.limits.headerBytes", 256);
    if (l.url !== undefined) proxy.limits.url = integer(l.url, "proxy.limits.url", 16);
    if (l.responseHeaderBytes !== undefined)
      proxy.limits.responseHeaderBytes = integer(l.responseHeaderBytes, "proxy.limits.responseHeaderBytes", 256);
  }
  if (s.errors !== undefined) {
    const e = mapping(s.errors, "proxy.errors", ["detail"]);
    if (e.detail !== undefined) proxy.errors.detail = boolean(e.detail, "proxy.errors.detail");
  }
  if (s.connections !== undefined) proxy.connections = integer(s.connections, "proxy.connections", 1);
  if (s.retry !== undefined) {
    const r = mapping(s.retry, "proxy.retry", ["attempts", "on", "methods", "grpcMethods"]);
    if (r.attempts !== undefined) proxy.retry.attempts = integer(r.attempts, "proxy.retry.attempts", 0);
    if (r.on !== undefined) proxy.retry.on = retryConditions(r.on, "proxy.retry.on");
    if (r.methods !== undefined) {
      proxy.retry.methods = list(r.methods, "proxy.retry.methods").map((m, i) => {
        if (typeof m !== "string" || !/^[A-Za-z]+$/.test(m)) {
          throw new ConfigError(`proxy.retry.methods[${i}]`, `must be an HTTP method, got ${show(m)}`);
        }
        return m.toUpperCase();
      });
    }
    if (r.grpcMethods !== undefined) {
      proxy.retry.grpcMethods = list(r.grpcMethods, "proxy.retry.grpcMethods").map((m, i) => {
        // As gRPC writes a method's path: one service (package-qualified) and one method, or * for all of its.
        if (typeof m !== "string" || !/^\/[^/\s*]+\/([^/\s*]+|\*)$/.test(m)) {
          throw new ConfigError(
            `proxy.retry.grpcMethods[${i}]`,
            `must be a gRPC method path /pkg.Service/Method or /pkg.Service/*, got ${show(m)}`,
          );
        }
        return m;
      });
    }
  }
  if (s.eject !== undefined) {
    const e = mapping(s.eject, "proxy.eject", ["after", "for"]);
    if (e.after !== undefined) proxy.eject.after = integer(e.after, "proxy.eject.after", 0);
    if (e.for !== undefined) proxy.eject.for = duration(e.for, "proxy.eject.for", { zero: true });
  }
  if (s.headers !== undefined) {
    const h = mapping(s.headers, "proxy.headers", ["forwarded", "ringInfo", "ownership"]);
    if (h.forwarded !== undefined) proxy.headers.forwarded = boolean(h.forwarded, "proxy.headers.forwarded");
    if (h.ringInfo !== undefined) proxy.headers.ringInfo = boolean(h.ringInfo, "proxy.headers.ringInfo");
    if (h.ownership !== undefined) {
      proxy.headers.ownership = h.ownership === "auto" ? "auto" : boolean(h.ownership, "proxy.headers.ownership");
    }
  }
}

function keySource(raw: unknown, field: string): KeySource {
  if (typeof raw !== "string") throw new ConfigError(field, `must be a string, got ${show(raw)}`);
  if (raw === "path") return { kind: "path" };
  const colon = raw.indexOf(":");
  const kind = colon < 0 ? raw : raw.slice(0, colon);
  const arg = colon < 0 ? "" : raw.slice(colon + 1);
  if (!["header", "query", "cookie", "regex"].includes(kind)) {
    throw new ConfigError(
      field,
      `must be path, header:NAME, query:NAME, cookie:NAME or regex:PATTERN, got ${show(raw)}`,
    );
  }
  if (arg === "") throw new ConfigError(field, `${kind}: needs a name or pattern after the colon`);
  if (kind === "header" && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(arg)) {
    throw new ConfigError(field, `${show(arg)} is not a valid header name`);
  }
  if (kind === "regex") {
    let groups: number;
    try {
      groups = (new RegExp(`${arg}|`).exec("")?.length ?? 1) - 1;
    } catch (error) {
      throw new ConfigError(field, `invalid regular expression: ${(error as Error).message}`);
    }
    if (groups < 1) throw new ConfigError(field, "the pattern needs a capture group: the key is its first group");
    return { kind: "regex", pattern: arg };
  }
  if (kind === "header") return { kind, name: arg.toLowerCase() };
  return { kind: kind as "query" | "cookie", name: arg };
}

function retryConditions(raw: unknown, field: string): (RetryCondition | number)[] {
  const conditions: RetryCondition[] = ["connect-failure", "reset", "timeout"];
  return list(raw, field).map((item, i) => {
    if (typeof item === "string" && (conditions as string[]).includes(item)) return item as RetryCondition;
    const status =
      typeof item === "number" ? item : typeof item === "string" && /^\d{3}$/.test(item) ? Number(item) : 0;
    if (!Number.isInteger(status) || status < 500 || status > 599) {
      throw new ConfigError(
        `${field}[${i}]`,
        `must be ${conditions.join(", ")} or a 5xx status code, got ${show(item)}`,
      );
    }
    return status;
  });
}
