import type { MembershipConfig } from "./config.ts";
import type { MembershipSource } from "./source.ts";
import { StaticSource } from "./static.ts";

/** Builds the source a validated membership config describes. */
export function createSource(config: MembershipConfig): MembershipSource {
  if (config.static) return new StaticSource(config.static.members);
  throw new Error("no membership source configured");
}
