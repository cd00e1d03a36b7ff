/**
 * Which member to try, and what to do when it fails. Passive ejection lives
 * here: it changes which member of a preference list is tried, never the
 * ring, so no partition moves because requests failed.
 */
import type { RoutingTable } from "../handoff/table.ts";
import type { Ring } from "../ring/ring.ts";

/** Consecutive failures per member, and who is ejected until when. */
export class Ejections {
  readonly #failures = new Map<string, number>();
  readonly #until = new Map<string, number>();

  constructor(
    /** Failures in a row that eject a member; 0 turns ejection off. */
    readonly after: number,
    /** Milliseconds an ejected member is skipped. */
    readonly duration: number,
    readonly now: () => number = Date.now,
  ) {}

  /** Whether `member` is currently skipped. Cheap when nobody is ejected. */
  isEjected(member: string): boolean {
    if (this.#until.size === 0) return false;
    const until = this.#until.get(member);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    // Ejection over: the member gets requests again, and one more failure re-ejects it.
    this.#until.delete(member);
    this.#failures.set(member, Math.max(0, this.after - 1));
    return false;
  }

  /** Records a failure; returns true when it ejects the member. */
  failure(member: string): boolean {
    if (this.after === 0) return false;
    const count = (this.#failures.get(member) ?? 0) + 1;
    this.#failures.set(member, count);
    if (count < this.after || this.#until.has(member)) return false;
    this.#until.set(member, this.now() + this.duration);
    return true;
  }

  success(member: string): void {
    if (this.#failures.size !== 0 && this.#failures.has(member)) this.#failures.delete(member);
  }

  /** Drops what is known about a member that left the ring. */
  forget(member: string): void {
    this.#failures.delete(member);
    this.#until.delete(member);
  }

  /** Members ejected right now. */
  ejected(): string[] {
    return [...this.#until.keys()].filter((member) => this.isEjected(member));
  }
}

/**
 * The member to try first for a partition: the first member the routing
 * table sends one of its ranks to that is not ejected. Without coordinated
 * hand-offs, when every owner is ejected, the first live member further
 * down its preference list. When every candidate is ejected it returns the
 * first anyway: a member that might have recovered beats a certain 503.
 * Under coordinated hand-offs only members routed a rank of the partition
 * are candidates; undefined when there are none (the request waits).
 */
export function firstChoice(routing: RoutingTable, partition: number, ejections: Ejections): string | undefined {
  const owners = routing.routed(partition);
  for (let i = 0; i < owners.length; i++) {
    const owner = owners[i] as string;
    if (!ejections.isEjected(owner)) return owner;
  }
  if (owners.length === 0) return undefined;
  if (!routing.coordinated) {
    for (const member of routing.ring.preferenceListOfPartition(partition)) {
      if (!ejections.isEjected(member)) return member;
    }
  }
  return owners[0];
}

/**
 * The next member to try after those in `tried` failed: the first untried,
 * non-ejected candidate, else the first untried one. Candidates are the
 * partition's preference list, or under coordinated hand-offs only the
 * members the table routes one of its ranks to (never a member that does not
 * hold it: with one replica, nobody). `partition` -1 (a request without a
 * key) walks the ring's member order.
 */
export function nextChoice(
  routing: RoutingTable,
  partition: number,
  tried: readonly string[],
  ejections: Ejections,
): string | undefined {
  const list =
    partition < 0
      ? routing.ring.members
      : routing.coordinated
        ? routing.routed(partition)
        : routing.ring.preferenceListOfPartition(partition);
  let fallback: string | undefined;
  for (const member of list) {
    if (tried.includes(member)) continue;
    if (!ejections.isEjected(member)) return member;
    fallback ??= member;
  }
  return fallback;
}

/** Round-robin over live members, for requests without a key under `key.missing: any`. */
export class AnyMember {
  #next = 0;

  pick(ring: Ring, ejections: Ejections): string | undefined {
    const members = ring.members;
    for (let i = 0; i < members.length; i++) {
      const member = members[this.#next++ % members.length] as string;
      if (!ejections.isEjected(member)) return member;
    }
    return members[0];
  }
}
