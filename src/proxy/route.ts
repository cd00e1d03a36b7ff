/**
 * The routing decision every request gets, plain HTTP and Upgrade alike:
 * find the key, pick the member. One function, so the two paths cannot
 * drift apart in what they accept or how they refuse.
 */
import type { KeyConfig } from "../config.ts";
import { KeyError } from "../errors/key-error.ts";
import type { Ring } from "../ring/ring.ts";
import { type AnyMember, type Ejections, firstChoice } from "./failover.ts";
import type { CompiledKey, KeyRequest } from "./key.ts";

/** Where a request goes: its first member, and its key's partition (-1 without a key). */
export interface Route {
  member: string;
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

export function routeRequest(req: KeyRequest, ring: Ring, router: Router): Route | Refusal {
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
      details: { key: { from: keyConfig.from } },
    };
  }
  if (ring.size === 0) return noMembers;
  if (k === undefined) {
    if (keyConfig.missing === "reject") {
      return {
        status: 400,
        error: "missing_key",
        message: `the request has no key: looked in ${key.source}`,
        details: { key: { from: keyConfig.from, source: key.source } },
      };
    }
    const member = router.anyMember.pick(ring, ejections);
    return member === undefined ? noMembers : { member, partition: -1 };
  }
  const partition = ring.partitionOf(k);
  const member = firstChoice(ring, partition, ejections);
  return member === undefined ? noMembers : { member, partition };
}

const noMembers: Refusal = {
  status: 503,
  error: "no_members",
  message: "no live member to send the request to",
  details: {},
};
