import { oneOf } from "../utils/fields.ts";
import type { Member } from "./source.ts";

/** How the proxy talks to a member; absent means "h1". */
export type MemberProtocol = NonNullable<Member["protocol"]>;

export const memberProtocols: readonly MemberProtocol[] = ["h1", "h2c"];

/** A member's `protocol` field as written in config or a members file; throws ConfigError naming `field`. */
export function memberProtocol(raw: unknown, field: string): MemberProtocol {
  return oneOf(raw, field, memberProtocols);
}

/** The protocol a member is spoken to with: what it declares, HTTP/1.1 when it declares nothing. */
export function protocolOf(member: Pick<Member, "protocol">): MemberProtocol {
  return member.protocol ?? "h1";
}

/** `member` with `protocol` set, or as it is when `protocol` is undefined (a source without the setting). */
export function withProtocol<T extends Member>(member: T, protocol: MemberProtocol | undefined): T {
  return protocol === undefined ? member : { ...member, protocol };
}

/** Whether two records of a member are reached the same way: the same URL, spoken to in the same protocol. */
export function sameAddress(a: Pick<Member, "url" | "protocol">, b: Pick<Member, "url" | "protocol">): boolean {
  return a.url === b.url && protocolOf(a) === protocolOf(b);
}
