import { ConfigError } from "../errors/config-error.ts";
import type { Clock } from "../utils/clock.ts";
import type { Logger } from "../utils/logger.ts";
import type { MembershipConfig } from "./config.ts";
import { DnsSource } from "./dns.ts";
import { EtcdSource } from "./etcd/source.ts";
import { FileSource } from "./file.ts";
import { HealthCheckedSource } from "./health.ts";
import { SerfSource } from "./serf/source.ts";
import type { MembershipSource } from "./source.ts";
import { StaticSource } from "./static.ts";

export interface CreateSourceOptions {
  /** Where sources log (members out of the ring, unusable records). Default: silent. */
  logger?: Logger;
  /** Runs every timer the sources set; default the system clock. */
  clock?: Clock;
}

/** Builds the source a validated membership config describes, wrapped in health checks when they are on. */
export function createSource(config: MembershipConfig, options: CreateSourceOptions = {}): MembershipSource {
  const { logger, clock } = options;
  let source: MembershipSource;
  if (config.static) source = new StaticSource(config.static.members);
  else if (config.file) source = new FileSource({ ...config.file, logger, clock });
  else if (config.serf) source = new SerfSource({ ...config.serf, logger, clock });
  else if (config.dns) source = new DnsSource(config.dns, { logger, clock });
  else if (config.etcd) source = new EtcdSource({ ...config.etcd, logger, clock });
  else throw new ConfigError("membership", "needs exactly one source (static, file, serf, dns, etcd)");
  if (config.health?.enabled) {
    const { enabled: _, ...health } = config.health;
    source = new HealthCheckedSource(source, { ...health, logger, clock });
  }
  return source;
}
