/**
 * What a reload (SIGHUP) changes, decided once for both hosts: which
 * sections apply live and which fields wait for a restart. Pure, apart from
 * `validate`, which reads the files a config names.
 */
import { readFileSync } from "node:fs";
import { checkFiles } from "../commands/check.ts";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import type { TlsMaterial } from "../proxy/server.ts";

/** What a reload changed: sections applied live, and fields that need a restart. */
export interface Reloaded {
  applied: string[];
  restart: string[];
}

/** The sections of `next` that differ from `current`, and the fields among them that need a restart. */
export interface ReloadPlan extends Reloaded {
  /** The config to run by from now on: `next`, with the restart-only fields kept as they run. */
  running: Config;
  logLevel: boolean;
  listener: boolean;
  tls: boolean;
  access: boolean;
  ring: boolean;
  membership: boolean;
}

/**
 * Compares `current` with `next`. `membershipOf` gives a config's membership
 * as it runs (the demo backends stand in for none).
 */
export function planReload(current: Config, next: Config, membershipOf: (c: Config) => unknown): ReloadPlan {
  const changed = (pick: (c: Config) => unknown) => JSON.stringify(pick(current)) !== JSON.stringify(pick(next));
  const restart = (["listen", "admin", "workers", "readiness", "metrics"] as const).filter((field) =>
    changed((c) => c[field]),
  ) as string[];
  if ((current.tls === undefined) !== (next.tls === undefined)) restart.push("tls");
  if (changed((c) => c.log.format)) restart.push("log.format");
  const plan = {
    logLevel: changed((c) => c.log.level),
    listener: changed((c) => [c.key, c.proxy, c.http2]),
    // Certificates are read again on every reload: a renewed file has the same path.
    tls: current.tls !== undefined && next.tls !== undefined,
    access: changed((c) => c.access),
    ring: changed((c) => c.ring),
    membership: changed(membershipOf),
  };
  const applied: string[] = [];
  if (plan.logLevel) applied.push("log.level");
  if (changed((c) => [c.key, c.proxy])) applied.push("key", "proxy");
  if (changed((c) => c.http2)) applied.push("http2");
  if (plan.tls) applied.push("tls");
  if (plan.access) applied.push("access");
  if (plan.ring) applied.push("ring");
  if (plan.membership) applied.push("membership");
  if (changed((c) => [c.shutdownTimeout, c.shutdownDelay])) applied.push("shutdown");
  const running: Config = {
    ...next,
    listen: current.listen,
    admin: current.admin,
    workers: current.workers,
    readiness: current.readiness,
    metrics: current.metrics,
    log: { ...next.log, format: current.log.format },
    tls: current.tls === undefined || next.tls === undefined ? current.tls : next.tls,
  };
  return { ...plan, applied, restart, running };
}

/** A reload's config, loaded and checked, with its TLS files read: everything before anything changes. */
export function validateReload(next: Config | (() => Config)): { config: Config; tls: TlsMaterial | undefined } {
  const config = typeof next === "function" ? next() : next;
  checkFiles(config);
  return { config, tls: config.tls === undefined ? undefined : readTls(config.tls) };
}

/** The PEM files of `tls`, read; a file that cannot be read is a ConfigError naming its field. */
export function readTls(tls: NonNullable<Config["tls"]>): TlsMaterial {
  const read = (path: string, field: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(field, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
  };
  return {
    cert: read(tls.cert, "tls.cert"),
    key: read(tls.key, "tls.key"),
    ca: tls.ca === undefined ? undefined : read(tls.ca, "tls.ca"),
  };
}
