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
  /** Where sources write their one-line notices (a file that does not parse, an agent gone). Default: stderr. */
  log?: (line: string) => void;
  /** For sources that log structured fields (etcd). */
  logger?: Logger;
}

/** Builds the source a validated membership config describes, wrapped in health checks when they are on. */
export function createSource(config: MembershipConfig, options: CreateSourceOptions = {}): MembershipSource {
  const { log } = options;
  let source: MembershipSource;
  if (config.static) source = new StaticSource(config.static.members);
  else if (config.file)
    source = new FileSource({ path: config.file.path, pollInterval: config.file.pollInterval, log });
  else if (config.serf) source = new SerfSource({ ...config.serf, log });
  else if (config.dns) source = new DnsSource(config.dns);
  else if (config.etcd) source = new EtcdSource({ ...config.etcd, logger: options.logger });
  else throw new Error("no membership source configured");
  if (config.health?.enabled) {
    const { enabled: _, ...health } = config.health;
    source = new HealthCheckedSource(source, { ...health, log });
  }
  return source;
}
