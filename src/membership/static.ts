import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

/** A member as written in config: a name and a URL, optionally tags. */
export interface StaticMember {
  name: string;
  url: string;
  tags?: Record<string, string>;
}

/**
 * A fixed member list. Every member is reported alive; wrap it in health
 * checks (./health.ts) to have failing members leave the ring.
 */
export class StaticSource implements MembershipSource {
  readonly kind = "static";
  readonly #members: Member[];

  constructor(members: readonly StaticMember[]) {
    this.#members = members.map(({ name, url, tags }) => ({ name, url, tags: { ...tags }, state: "alive" }));
  }

  async start(sink: SnapshotSink): Promise<void> {
    sink.snapshot(this.#members);
  }

  async stop(): Promise<void> {}
}
