/**
 * The routing decision every request gets, plain HTTP and Upgrade alike:
 * find the key, pick the member. One function, so the two paths cannot
 * drift apart in what they accept or how they refuse.
 */
import { type KeyConfig, keySourceText } from "../config.ts";
import { KeyError } from "../errors/key-error.ts";
import type { RoutingTable } from "../handoff/table.ts";
import { type AnyMember, type Ejections, firstChoice } from "./failover.ts";
import type { CompiledKey, KeyRequest } from "./key.ts";

/** Where a request goes: its first member, and its key's partition (-1 without a key). */
export interface Route {
  member: string;
  partition: number;
}

/**
 * No member holds the key's partition ready (coordinated hand-offs, a slot
 * in flux): the request waits for it, up to the hand-off wait, then 503.
 */
export interface Wait {
  wait: true;
  partition: number;
}

/** Why a request goes nowhere: the status and JSON error body to answer with. */
export interface Refusal {
  status: number;
  error: string;
  message: string;
  details: Record<string, unknown>;
}

export interface Router {
  key: CompiledKey;
  keyConfig: KeyConfig;
  ejections: Ejections;
  /** Round-robin for requests without a key under `key.missing: any`. */
  anyMember: AnyMember;
}

export function routeRequest(req: KeyRequest, routing: RoutingTable, router: Router): Route | Refusal | Wait {
  const { key, keyConfig, ejections } = router;
  let k: string | undefined;
  try {
    k = key.extract(req);
  } catch (error) {
    if (!(error instanceof KeyError)) throw error;
    return {
      status: error.status,
      error: error.code,
      message: error.message,
      details: { key: { from: keySourceText(keyConfig.from) } },
    };
  }
  const ring = routing.ring;
  if (ring.size === 0) return noMembers;
  if (k === undefined) {
    if (keyConfig.missing === "reject") {
      return {
        status: 400,
        error: "missing_key",
        message: `the request has no key: looked in ${key.source}`,
        details: { key: { from: keySourceText(keyConfig.from), source: key.source } },
      };
    }
    const member = router.anyMember.pick(ring, ejections);
    return member === undefined ? noMembers : { member, partition: -1 };
  }
  const partition = ring.partitionOf(k);
  return choose(routing, partition, ejections);
}

/** The member for a known partition now, or a wait when none holds it ready (coordinated hand-offs only). */
export function choose(routing: RoutingTable, partition: number, ejections: Ejections): Route | Refusal | Wait {
  const member = firstChoice(routing, partition, ejections);
  if (member !== undefined) return { member, partition };
  return routing.coordinated ? { wait: true, partition } : noMembers;
}

/**
 * The ownership headers a member gets with a keyed request: the partition,
 * the rank the table routes it to this member at, and (under coordinated
 * hand-offs) the table's version. A member may refuse a version it has not
 * reached. "" for a request without a key, or a member the table does not
 * route the partition to.
 */
export function ownershipHeaders(routing: RoutingTable, partition: number, member: string): string {
  if (partition < 0) return "";
  for (let r = 0; r < routing.ranks; r++) {
    if (routing.member(partition, r) !== member) continue;
    const version = routing.version === undefined ? "" : `x-ringroute-version: ${routing.version}\r\n`;
    return `x-ringroute-partition: ${partition}\r\nx-ringroute-rank: ${r}\r\n${version}`;
  }
  return "";
}

/** Whether the ownership headers go to members: `auto` turns them on under coordinated hand-offs. */
export function sendsOwnership(setting: boolean | "auto", routing: RoutingTable): boolean {
  return setting === true || (setting === "auto" && routing.coordinated);
}

const noMembers: Refusal = {
  status: 503,
  error: "no_members",
  message: "no live member to send the request to",
  details: {},
};
