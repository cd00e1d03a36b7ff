import { once } from "node:events";
import { parseArgs } from "node:util";
import { parseRing } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import { loadEtcd3 } from "../membership/etcd/client.ts";
import { endpoints, parseEtcdConfig } from "../membership/etcd/config.ts";
import { httpHooks } from "../membership/etcd/hooks.ts";
import { EtcdMember } from "../membership/etcd/member.ts";
import { EtcdSource } from "../membership/etcd/source.ts";
import { memberProtocol } from "../membership/protocol.ts";
import { duration } from "../utils/duration.ts";
import { oneOf } from "../utils/fields.ts";
import type { Command } from "./command.ts";
import { ringFlags } from "./flags.ts";
import { createLogging } from "./logging.ts";
import { usageError } from "./usage-error.ts";

export const memberUsage = `ringroute member --etcd URLS --name NAME --url URL [flags]
  Registers a backend (written in any language) in an etcd cluster and keeps
  it there: a lease kept alive while this sidecar runs, ready while GET
  URL+HEALTH-PATH answers 2xx, not ready (drained) while it fails; SIGTERM
  or SIGINT leaves: drains, waits until its partitions are ready elsewhere
  (at most --leave-timeout), then revokes the lease. It also takes part in
  the leader election and runs the member's hand-offs: with --release-hook
  and --acquire-hook it POSTs {partition, rank, from, to, version} as JSON
  to the backend and counts a 2xx as done (retrying otherwise); without
  them it reports each hand-off done at once.
  --cluster NAME (ringroute)  --prefix /ringroute/NAME/  --ttl 10s
  --tags k=v,k=v  --protocol h1|h2c (h2c: HTTP/2 in cleartext, for gRPC servers)
  --health-path /healthz  --health-interval 2s  --health-timeout 1s
  --release-hook URL  --acquire-hook URL  --hook-timeout 10s  --handoff-timeout 30s
  --leave-timeout 30s
  --partitions P --replicas R --hash H --placement P --order O --balance-factor F
  (the ring a leader publishes; balanced, factor 1.25, unless set)
  --username U --password P  --ca FILE --cert FILE --key FILE
  --log-level info (RINGROUTE_LOG_LEVEL)  --log-format auto|json|pretty (RINGROUTE_LOG_FORMAT)`;

const options = {
  help: { type: "boolean", short: "h" },
  etcd: { type: "string" },
  name: { type: "string" },
  url: { type: "string" },
  cluster: { type: "string" },
  prefix: { type: "string" },
  ttl: { type: "string" },
  tags: { type: "string" },
  protocol: { type: "string" },
  "health-path": { type: "string" },
  "health-interval": { type: "string" },
  "health-timeout": { type: "string" },
  "release-hook": { type: "string" },
  "acquire-hook": { type: "string" },
  "hook-timeout": { type: "string" },
  "handoff-timeout": { type: "string" },
  "leave-timeout": { type: "string" },
  partitions: { type: "string" },
  replicas: { type: "string" },
  hash: { type: "string" },
  placement: { type: "string" },
  order: { type: "string" },
  "balance-factor": { type: "string" },
  username: { type: "string" },
  password: { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
} as const;

const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export async function member(args: string[]): Promise<void> {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(args).values;
  } catch (error) {
    throw usageError(error);
  }
  if (values.help) {
    process.stdout.write(`usage: ${memberUsage}\n`);
    return;
  }
  if (values.etcd === undefined) throw new ConfigError("--etcd", "required: etcd URLs, comma-separated");
  if (values.name === undefined || values.name === "" || values.name.includes("/")) {
    throw new ConfigError("--name", "required: the member's name (no /)");
  }
  if (values.url === undefined || !/^https?:\/\//.test(values.url) || !URL.canParse(values.url)) {
    throw new ConfigError("--url", `required: the member's http(s) URL, got ${JSON.stringify(values.url)}`);
  }
  const protocol = values.protocol === undefined ? undefined : memberProtocol(values.protocol, "--protocol");
  const tls =
    values.ca || values.cert || values.key ? { ca: values.ca, cert: values.cert, key: values.key } : undefined;
  const config = parseEtcdConfig(
    Object.fromEntries(
      Object.entries({
        endpoints: endpoints(values.etcd, "--etcd"),
        cluster: values.cluster,
        prefix: values.prefix,
        username: values.username,
        password: values.password,
        tls: tls && Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)),
      }).filter(([, v]) => v !== undefined),
    ),
    "--etcd",
  );
  const ttl = values.ttl === undefined ? 10_000 : duration(values.ttl, "--ttl");
  const interval =
    values["health-interval"] === undefined ? 2000 : duration(values["health-interval"], "--health-interval");
  const timeout =
    values["health-timeout"] === undefined ? 1000 : duration(values["health-timeout"], "--health-timeout");
  const healthPath = values["health-path"];
  if (healthPath !== undefined && !healthPath.startsWith("/")) {
    throw new ConfigError("--health-path", `must start with "/", got ${JSON.stringify(healthPath)}`);
  }
  const releaseHook = hookUrl(values["release-hook"], "--release-hook");
  const acquireHook = hookUrl(values["acquire-hook"], "--acquire-hook");
  const hookTimeout =
    values["hook-timeout"] === undefined ? 10_000 : duration(values["hook-timeout"], "--hook-timeout");
  const handoffTimeout =
    values["handoff-timeout"] === undefined ? undefined : duration(values["handoff-timeout"], "--handoff-timeout");
  const leaveTimeout =
    values["leave-timeout"] === undefined ? 30_000 : duration(values["leave-timeout"], "--leave-timeout");
  const { partitions, replicas, hash, placement, order } = values;
  const balanceFactor = values["balance-factor"];
  const given = Object.entries({ partitions, replicas, hash, placement, order, balanceFactor }).filter(
    ([, v]) => v !== undefined,
  );
  const ring = parseRing(Object.fromEntries(given), "ring");
  loadEtcd3("--etcd");

  // The same logger as serve's: ISO times, level names, pretty on a terminal.
  const level = values["log-level"] ?? (process.env.RINGROUTE_LOG_LEVEL || "info");
  const format = values["log-format"] ?? (process.env.RINGROUTE_LOG_FORMAT || "auto");
  const { logger: root } = await createLogging({
    level: oneOf(level, "--log-level", logLevels),
    format: oneOf(format, "--log-format", ["json", "pretty", "auto"] as const),
  });
  const logger = root.child({ command: "member" });
  const source = new EtcdSource({ ...config, logger });
  const member = new EtcdMember(source, {
    name: values.name,
    url: values.url,
    tags: tags(values.tags),
    protocol,
    ttl,
    ring,
    logger,
    ready: healthPath === undefined,
    handoff: httpHooks(values.name, { release: releaseHook, acquire: acquireHook, timeout: hookTimeout, logger }),
    handoffTimeout,
    leaveTimeout,
    onFenced: (reason) => logger.warn({ reason }, "fenced: holding nothing until hand-offs give partitions back"),
  });
  await source.start({ snapshot: () => {}, down: () => {} });
  try {
    await member.join();
  } catch (error) {
    await source.stop();
    throw new ConfigError(
      "--etcd",
      `cannot register with etcd at ${config.endpoints.join(",")}: ${(error as Error).message}`,
    );
  }
  logger.info({ name: values.name, url: values.url, protocol: protocol ?? "h1", prefix: config.prefix }, "registered");

  let timer: NodeJS.Timeout | undefined;
  let leaving = false;
  if (healthPath !== undefined) {
    const target = new URL(healthPath, values.url);
    const check = async () => {
      let ok = false;
      try {
        const response = await fetch(target, { signal: AbortSignal.timeout(timeout) });
        await response.arrayBuffer();
        ok = response.ok;
      } catch {}
      if (leaving) return;
      if (ok !== member.ready) {
        logger.info({ health: target.href, ready: ok }, ok ? "healthy: ready" : "health check failed: not ready");
        await member.setReady(ok).catch((error) => logger.warn({ err: error }, "cannot update readiness"));
      }
      if (!leaving) timer = setTimeout(check, interval);
    };
    await check();
  }

  await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);
  leaving = true;
  clearTimeout(timer);
  logger.info({ name: values.name }, "leaving");
  await member.leave();
  await source.stop();
}

function hookUrl(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (!/^https?:\/\//.test(value) || !URL.canParse(value)) {
    throw new ConfigError(flag, `must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
  return value;
}

function tags(value: string | undefined): Record<string, string> {
  if (value === undefined || value.trim() === "") return {};
  return Object.fromEntries(
    value.split(",").map((pair) => {
      const at = pair.indexOf("=");
      if (at <= 0) throw new ConfigError("--tags", `expected k=v, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
    }),
  );
}

function parse(args: string[]) {
  return parseArgs({ args, options, allowPositionals: false, strict: true });
}

/** `ringroute member` for the command table: its flags, for help and parsing. */
export const memberCommand: Command = {
  name: "member",
  synopsis: "ringroute member --etcd URLS --name NAME --url URL [flags]",
  description: memberUsage
    .split("\n")
    .slice(1, 11)
    .map((line) => line.trim())
    .join("\n"),
  flags: [
    { name: "etcd", value: "URLS", help: "etcd endpoints, comma-separated (required)" },
    { name: "name", value: "NAME", help: "the member's name (required)" },
    { name: "url", value: "URL", help: "the member's http(s) URL (required)" },
    { name: "cluster", value: "NAME", help: "cluster name", shownDefault: "ringroute" },
    { name: "prefix", value: "PREFIX", help: "key prefix", shownDefault: "/ringroute/NAME/" },
    { name: "ttl", value: "DURATION", help: "lease time to live", shownDefault: "10s" },
    { name: "tags", value: "k=v,…", help: "the member's tags" },
    {
      name: "protocol",
      value: "h1|h2c",
      help: "how proxies talk to the member (h2c: HTTP/2 in cleartext, gRPC)",
      shownDefault: "h1",
    },
    {
      name: "health-path",
      value: "PATH",
      help: "ready while URL+PATH answers 2xx",
      shownDefault: "none: always ready",
    },
    { name: "health-interval", value: "DURATION", help: "between health checks", shownDefault: "2s" },
    { name: "health-timeout", value: "DURATION", help: "a health check's answer", shownDefault: "1s" },
    { name: "release-hook", value: "URL", help: "POSTed {partition, rank, from, to, version} to release; 2xx = done" },
    { name: "acquire-hook", value: "URL", help: "POSTed {partition, rank, from, to, version} to acquire; 2xx = done" },
    { name: "hook-timeout", value: "DURATION", help: "one hook attempt", shownDefault: "10s" },
    {
      name: "handoff-timeout",
      value: "DURATION",
      help: "a hand-off step still running is given up after",
      shownDefault: "30s",
    },
    {
      name: "leave-timeout",
      value: "DURATION",
      help: "on SIGTERM, wait this long for partitions to be ready elsewhere",
      shownDefault: "30s",
    },
    ...ringFlags.filter((flag) =>
      ["partitions", "replicas", "hash", "placement", "order", "balance-factor"].includes(flag.name),
    ),
    { name: "username", value: "U", help: "etcd user" },
    { name: "password", value: "P", help: "etcd password" },
    { name: "ca", value: "FILE", help: "etcd CA certificate" },
    { name: "cert", value: "FILE", help: "etcd client certificate" },
    { name: "key", value: "FILE", help: "etcd client key" },
  ],
  run: (_line, args) => member(args),
};
