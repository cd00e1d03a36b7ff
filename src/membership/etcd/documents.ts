import type { HandoffDoc, SlotLists, VersionDoc } from "../../handoff/documents.ts";
import type { RingConfig } from "../../ring/ring.ts";

/** `members/<name>`: a registered member. */
export interface MemberRecord {
  url: string;
  tags: Record<string, string>;
  /** Only ready members enter the ring; false drains the member. */
  ready: boolean;
  /** How the proxy talks to the member: "h2c" (HTTP/2 in cleartext, gRPC members); absent or "h1": HTTP/1.1. */
  protocol?: "h1" | "h2c";
}

export type { HandoffDoc, SlotLists, VersionDoc } from "../../handoff/documents.ts";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");

function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A member's value, or undefined when it is not the contract's JSON (such a
 * member is left out): `{"url", "tags", "ready", "protocol"}`. A protocol
 * other than "h1" or "h2c" leaves the member out too: the proxy could not
 * speak to it the way it asks.
 */
export function parseMember(text: string): MemberRecord | undefined {
  const value = json(text);
  if (!isObject(value) || typeof value.url !== "string" || !/^https?:\/\//.test(value.url)) return undefined;
  if (value.protocol !== undefined && value.protocol !== "h1" && value.protocol !== "h2c") return undefined;
  const tags: Record<string, string> = {};
  if (isObject(value.tags)) for (const [k, v] of Object.entries(value.tags)) if (typeof v === "string") tags[k] = v;
  const record: MemberRecord = { url: value.url, tags, ready: value.ready === true };
  if (value.protocol !== undefined) record.protocol = value.protocol;
  return record;
}

/** A member's value as the contract writes it. */
export function memberDocument(record: MemberRecord): string {
  return JSON.stringify({ url: record.url, tags: record.tags, ready: record.ready, protocol: record.protocol ?? "h1" });
}

export function parseVersion(text: string): VersionDoc | undefined {
  const value = json(text);
  if (!isObject(value) || !Number.isSafeInteger(value.version) || !isStrings(value.members)) return undefined;
  if (!isObject(value.ring) || typeof value.checksum !== "string") return undefined;
  return {
    version: value.version as number,
    members: value.members,
    previous: isStrings(value.previous) ? value.previous : [],
    ring: value.ring as unknown as RingConfig,
    checksum: value.checksum,
  };
}

function slotLists(value: unknown): SlotLists {
  const lists: SlotLists = {};
  if (!isObject(value)) return lists;
  for (const [rank, partitions] of Object.entries(value)) {
    if (/^\d+$/.test(rank) && Array.isArray(partitions)) lists[rank] = partitions.filter(Number.isSafeInteger);
  }
  return lists;
}

export function parseHandoff(text: string): HandoffDoc | undefined {
  const value = json(text);
  if (!isObject(value) || !Number.isSafeInteger(value.version)) return undefined;
  const released: Record<string, SlotLists> = {};
  if (isObject(value.released)) {
    for (const [version, lists] of Object.entries(value.released))
      if (/^\d+$/.test(version)) released[version] = slotLists(lists);
  }
  const doc: HandoffDoc = { version: value.version as number, ready: slotLists(value.ready), released };
  if (Number.isSafeInteger(value.since)) doc.since = value.since as number;
  return doc;
}

/** A non-negative integer written as text (`ready/<name>`, `stable`). */
export function parseNumber(text: string): number | undefined {
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
