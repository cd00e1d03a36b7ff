import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { type Config, keySourceText, parseConfig } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import type { MembershipConfig } from "../membership/config.ts";
import { loadEtcd3 } from "../membership/etcd/client.ts";
import { parseMembersFile } from "../membership/file.ts";
import type { Command } from "./command.ts";
import { parseCommandLine, rawConfig, serveFlags } from "./flags.ts";

export const check: Command = {
  name: "check",
  synopsis: "ringroute check [--config FILE] [flags]",
  description: `Validates what serve would read (the config, the membership source's settings,
a members file, TLS files) without binding or contacting anything; prints one line.
Exit 0 when serve would start, 2 with the field that is wrong.`,
  flags: serveFlags,
  async run(_line, args) {
    const raw = rawConfig(parseCommandLine(args, serveFlags).values, serveFlags);
    const config = parseConfig(raw);
    checkFiles(config);
    // serve would load etcd3 at start; an install without it fails here the same way.
    if (config.membership?.etcd) loadEtcd3();
    process.stdout.write(`config ok: ${summary(config)}\n`);
    const notice = placementNotice(raw);
    if (notice !== undefined) process.stderr.write(`notice: ${notice}\n`);
  },
};

/** Reads the files serve would read at start: a members file, and TLS PEM files (parsed, so a bad one shows now). */
export function checkFiles(config: Config, read = (path: string) => readFileSync(path)): void {
  const file = (path: string, field: string): Buffer => {
    try {
      return read(path);
    } catch (error) {
      throw new ConfigError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
  };
  const members = config.membership?.file?.path;
  if (members !== undefined) parseMembersFile(file(members, "membership.file.path").toString("utf8"), members);
  if (config.tls !== undefined) {
    const cert = file(config.tls.cert, "tls.cert");
    const key = file(config.tls.key, "tls.key");
    const ca = config.tls.ca === undefined ? undefined : file(config.tls.ca, "tls.ca");
    try {
      createSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
    } catch (error) {
      throw new ConfigError("tls", `the certificate and key do not load: ${(error as Error).message}`);
    }
  }
}

/**
 * The upgrade notice: a config that leaves `ring.placement` unset (and no
 * `compat` that fixes it) gets the default, which changed from jump to
 * balanced; a tier that relied on the old default re-places its partitions.
 */
export function placementNotice(raw: Record<string, unknown>): string | undefined {
  const ring = raw.ring;
  const set = (field: string) =>
    typeof ring === "object" && ring !== null && (ring as Record<string, unknown>)[field] !== undefined;
  if (set("placement") || set("compat")) return undefined;
  return (
    "ring.placement is not set, so it is balanced (balanceFactor 1.25), the new default; " +
    "earlier versions defaulted to jump: set ring.placement: jump to keep a tier's rings as they were"
  );
}

/** One line: what serve runs (check prints it, serve logs it at start). */
export function summary(config: Config): string {
  const { ring, membership } = config;
  const source = membership === undefined ? "demo backends" : sourceSummary(membership);
  const address = (a: { host: string; port: number }) => `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
  return [
    `listen ${address(config.listen)}${config.tls ? " (https)" : ""}`,
    `admin ${address(config.admin)}`,
    `ring ${ring.partitions} partitions, ${ring.replicas} replicas, ${ring.placement}, ${ring.hash}`,
    `key ${keySourceText(config.key.from)}`,
    `membership ${source}${membership?.health?.enabled ? " + health checks" : ""}`,
    `workers ${config.workers}`,
  ].join(", ");
}

/** The membership source in a few words; every kind named, so a new one cannot print as nothing. */
function sourceSummary(membership: MembershipConfig): string {
  if (membership.static) return `static (${membership.static.members.length} members)`;
  if (membership.file) return `file ${membership.file.path}`;
  if (membership.serf) return `serf ${membership.serf.rpc}`;
  if (membership.dns) return `dns ${membership.dns.name}`;
  if (membership.etcd) {
    const { endpoints, prefix, handoff } = membership.etcd;
    return `etcd ${endpoints.join(",")} ${prefix} (${handoff} hand-offs)`;
  }
  throw new Error(`no summary for membership ${Object.keys(membership).join(", ")}`);
}
