import { memberUrl } from "./member-url.ts";
import { withProtocol } from "./protocol.ts";
import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

/** A member as written in config: a name and a URL, optionally tags and the protocol it speaks. */
export interface StaticMember {
  name: string;
  url: string;
  /** How the proxy talks to it: HTTP/1.1 (absent, "h1") or HTTP/2 over cleartext ("h2c"). */
  protocol?: "h1" | "h2c";
  tags?: Record<string, string>;
}

/**
 * A fixed member list. Every member is reported alive; wrap it in health
 * checks (./health.ts) to have failing members leave the ring. It has no
 * timers and nothing to log, so it takes no clock or logger.
 */
export class StaticSource implements MembershipSource {
  readonly kind = "static";
  readonly #members: Member[];

  /** Throws ConfigError (`members[1].url`) for a URL that cannot be a member's. */
  constructor(members: readonly StaticMember[]) {
    this.#members = members.map(({ name, url, tags, protocol }, i) =>
      withProtocol({ name, url: memberUrl(url, `members[${i}].url`), tags: { ...tags }, state: "alive" }, protocol),
    );
  }

  async start(sink: SnapshotSink): Promise<void> {
    sink.snapshot(this.#members);
  }

  async stop(): Promise<void> {}
}
