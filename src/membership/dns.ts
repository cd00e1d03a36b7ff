import { Resolver } from "node:dns/promises";
import { isIPv6 } from "node:net";
import { ConfigError } from "../errors/config-error.ts";
import { SourceError } from "../errors/source-error.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { duration } from "../utils/duration.ts";
import { integer, mapping } from "../utils/fields.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { type DnsAction, type DnsEvent, type DnsState, firstDns, nextDns } from "./dns-state.ts";
import { memberUrlProblem } from "./member-url.ts";
import { memberProtocol, withProtocol } from "./protocol.ts";
import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

/** Record types the DNS source can poll. */
export type DnsRecordType = "SRV" | "A" | "AAAA";

/**
 * The `membership.dns` section: members are whatever a DNS name resolves
 * to, polled at an interval. In Kubernetes that name is a headless
 * Service's SRV record, which lists one target per ready pod.
 */
export interface DnsConfig {
  /**
   * The name to look up. SRV: "_http._tcp.web.default.svc.cluster.local"
   * (a headless Service with a port named http). A/AAAA:
   * "web.default.svc.cluster.local".
   */
  name: string;
  /**
   * SRV: one member per target host, named by the host (stable across pod
   * restarts for a StatefulSet: web-0.web.default.svc.cluster.local), port
   * from the record. A/AAAA: one member per address, named "ip:port".
   */
  type: DnsRecordType;
  /** Member port. Required for A/AAAA; for SRV it overrides the record's port. */
  port?: number;
  /** Milliseconds between the end of one lookup and the start of the next. Polls never overlap. */
  interval: number;
  /** Milliseconds one query attempt waits for an answer before it counts as a timeout. */
  timeout: number;
  /** Query attempts per poll before the poll fails (UDP loses packets). */
  tries: number;
  /** DNS server "ip", "ip:port" or "[ipv6]:port"; default: the system's resolvers (/etc/resolv.conf). */
  server?: string;
  /** URL scheme of the members' URLs. */
  scheme: "http" | "https";
  /**
   * Consecutive "no such name" / "no records" answers for a name that had
   * records before the source reports an empty membership. A DNS server
   * that briefly loses its data (restart, zone reload) then cannot empty
   * the ring in one poll.
   */
  emptyAfter: number;
  /** How the proxy talks to every member this name lists: "h2c" for gRPC members; absent: HTTP/1.1. */
  protocol?: "h1" | "h2c";
}

/** Defaults for every optional field of the dns section. */
export function defaultDnsConfig(): Omit<DnsConfig, "name" | "port" | "server"> {
  return { type: "SRV", interval: 5000, timeout: 2000, tries: 2, scheme: "http", emptyAfter: 3 };
}

/** c-ares codes that are a real answer: the name does not exist, or has no records of the type. */
const emptyAnswerCodes = new Set(["ENOTFOUND", "ENODATA"]);

export interface DnsSourceOptions {
  /** Runs the poll timer; default the system clock. */
  clock?: Clock;
  /** Records left out (a target that makes no valid URL). Default: silent. */
  logger?: Logger;
}

/**
 * Polls a DNS name and reports its records as the membership.
 *
 * A failed lookup (timeout, refused, server failure) reports `down` and
 * keeps the last view; polling goes on, so the source comes back by itself.
 * An empty answer for a name that had records is believed only after
 * `emptyAfter` consecutive ones; until then it too reports `down`, so the
 * ring stays as it was. The rules live in ./dns-state.ts.
 */
export class DnsSource implements MembershipSource {
  readonly kind = "dns";
  readonly config: Readonly<DnsConfig>;
  readonly #resolver: Resolver;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #sink: SnapshotSink | undefined;
  #state: DnsState | undefined;
  #cancelTimer: (() => void) | undefined;
  #lookup: Promise<void> | undefined;
  #stopped = false;
  /** Records already logged as unusable, to log each once. */
  #unusable = new Set<string>();

  constructor(config: DnsConfig, options: DnsSourceOptions = {}) {
    this.config = Object.freeze({ ...config });
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#resolver = new Resolver({ timeout: config.timeout, tries: config.tries });
    if (config.server !== undefined) this.#resolver.setServers([config.server]);
  }

  /** Runs the first lookup, then polls every `interval`. Resolves after the first lookup, answered or not. */
  async start(sink: SnapshotSink): Promise<void> {
    if (this.#state !== undefined || this.#stopped) return;
    this.#sink = sink;
    const { state, actions } = firstDns();
    this.#state = state;
    this.#run(actions);
    await this.#lookup;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#resolver.cancel(); // an in-flight lookup fails with ECANCELLED and reports nothing
    await this.#lookup;
  }

  #feed(event: DnsEvent): void {
    if (this.#stopped || this.#state === undefined) return;
    const { state, actions } = nextDns(this.#state, event, this.config);
    this.#state = state;
    this.#run(actions);
  }

  #run(actions: DnsAction[]): void {
    const sink = this.#sink as SnapshotSink;
    const { name, type, emptyAfter } = this.config;
    for (const action of actions) {
      if (action.type === "lookup") this.#lookup = this.#look();
      else if (action.type === "schedule") {
        this.#cancelTimer = this.#clock.setTimer(() => {
          this.#cancelTimer = undefined;
          this.#feed({ type: "due" });
        }, action.delay);
      } else if (action.type === "snapshot") sink.snapshot(action.members);
      else if (action.type === "down") sink.down(action.error);
      else {
        const why = (action.cause as NodeJS.ErrnoException | undefined)?.code ?? "no records";
        sink.down(
          new SourceError(
            "dns",
            `dns ${type} ${name}: ${why}, ${action.streak} of ${emptyAfter} before the view empties`,
            {
              cause: action.cause,
            },
          ),
        );
      }
    }
  }

  async #look(): Promise<void> {
    let event: DnsEvent;
    try {
      event = { type: "answer", members: this.#valid(await this.#resolve()) };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      event = emptyAnswerCodes.has(code)
        ? { type: "answer", members: [], cause: error as Error }
        : { type: "failed", error: lookupError(this.config, error) };
    }
    this.#feed(event);
  }

  /** Members whose record makes a valid URL; the others are logged once and left out. */
  #valid(members: Member[]): Member[] {
    return members.filter((member) => {
      const problem = memberUrlProblem(member.url);
      if (problem === undefined) return true;
      if (!this.#unusable.has(member.url)) {
        this.#unusable.add(member.url);
        this.#logger.warn(
          { member: member.name, url: member.url, problem },
          "dns record makes no usable member URL; left out",
        );
      }
      return false;
    });
  }

  async #resolve(): Promise<Member[]> {
    const { name, type, port, scheme, protocol } = this.config;
    let members: Member[];
    if (type === "SRV") members = srvMembers(await this.#resolver.resolveSrv(name), scheme, port);
    else {
      const addresses = type === "A" ? await this.#resolver.resolve4(name) : await this.#resolver.resolve6(name);
      members = addressMembers(addresses, scheme, port as number);
    }
    return members.map((member) => withProtocol(member, protocol));
  }
}

/**
 * One member per SRV target. A target listed more than once (several
 * ports) becomes one member: the record RFC 2782 prefers (lowest priority,
 * then highest weight), then the lowest port. Target "." means "no service".
 */
export function srvMembers(
  records: readonly { name: string; port: number; priority: number; weight: number }[],
  scheme: string,
  port?: number,
): Member[] {
  const preferred = [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight || a.port - b.port);
  const byName = new Map<string, Member>();
  for (const record of preferred) {
    const host = record.name.replace(/\.$/, "");
    if (host === "" || byName.has(host)) continue;
    const memberPort = port ?? record.port;
    byName.set(host, {
      name: host,
      url: `${scheme}://${host}:${memberPort}`,
      tags: { port: String(memberPort), priority: String(record.priority), weight: String(record.weight) },
      state: "alive",
    });
  }
  return [...byName.values()];
}

/** One member per address, named "ip:port" ("[ip]:port" for IPv6, as in a URL). */
export function addressMembers(addresses: readonly string[], scheme: string, port: number): Member[] {
  const names = new Set<string>();
  const members: Member[] = [];
  for (const address of addresses) {
    const host = isIPv6(address) ? `[${address}]` : address;
    const name = `${host}:${port}`;
    if (names.has(name)) continue;
    names.add(name);
    members.push({ name, url: `${scheme}://${name}`, tags: { address }, state: "alive" });
  }
  return members;
}

function lookupError(config: DnsConfig, error: unknown): SourceError {
  const code = (error as NodeJS.ErrnoException)?.code ?? String(error);
  const server = config.server ?? "system resolver";
  return new SourceError("dns", `dns ${config.type} ${config.name} via ${server}: ${code}`, { cause: error });
}

const fields = ["name", "type", "port", "interval", "timeout", "tries", "server", "scheme", "emptyAfter", "protocol"];

/**
 * Validates the raw `membership.dns` section (parsed YAML), filling in
 * defaults. Durations are milliseconds or strings like "5s" and "500ms".
 * Throws ConfigError naming the field, e.g. `membership.dns.port`.
 */
export function parseDnsConfig(raw: unknown, path = "membership.dns"): DnsConfig {
  const section = mapping(raw, path, fields);
  const defaults = defaultDnsConfig();

  const { name } = section;
  if (typeof name !== "string" || name.trim() === "") throw new ConfigError(`${path}.name`, "must be a DNS name");

  const rawType = section.type ?? defaults.type;
  const type = typeof rawType === "string" ? rawType.toUpperCase() : rawType;
  if (type !== "SRV" && type !== "A" && type !== "AAAA") {
    throw new ConfigError(`${path}.type`, `must be SRV, A or AAAA, got ${JSON.stringify(rawType)}`);
  }

  let port: number | undefined;
  if (section.port !== undefined) {
    port = integer(section.port, `${path}.port`, 1, 65535);
  } else if (type !== "SRV") {
    throw new ConfigError(`${path}.port`, `is required for type ${type} (the records carry no port)`);
  }

  const scheme = section.scheme ?? defaults.scheme;
  if (scheme !== "http" && scheme !== "https") {
    throw new ConfigError(`${path}.scheme`, `must be http or https, got ${JSON.stringify(scheme)}`);
  }

  const config: DnsConfig = {
    name: name.trim(),
    type,
    interval: section.interval === undefined ? defaults.interval : duration(section.interval, `${path}.interval`),
    timeout: section.timeout === undefined ? defaults.timeout : duration(section.timeout, `${path}.timeout`),
    tries: integer(section.tries ?? defaults.tries, `${path}.tries`, 1),
    scheme,
    emptyAfter: integer(section.emptyAfter ?? defaults.emptyAfter, `${path}.emptyAfter`, 1),
  };
  if (port !== undefined) config.port = port;

  if (section.server !== undefined) {
    const server = section.server;
    if (typeof server !== "string" || server === "") {
      throw new ConfigError(`${path}.server`, 'must be "ip", "ip:port" or "[ipv6]:port"');
    }
    try {
      // The resolver's own parser decides what it accepts.
      new Resolver().setServers([server]);
    } catch {
      throw new ConfigError(
        `${path}.server`,
        `must be "ip", "ip:port" or "[ipv6]:port", got ${JSON.stringify(server)}`,
      );
    }
    config.server = server;
  }
  if (section.protocol !== undefined) config.protocol = memberProtocol(section.protocol, `${path}.protocol`);
  return config;
}
