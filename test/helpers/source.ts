import type { Member, MembershipSource, SnapshotSink } from "../../src/membership/source.ts";

/** A member by name (URL `http://<name>.test:80`, alive, no tags), or with the fields given. */
export type MemberSpec = string | (Partial<Member> & { name: string });

export function member(spec: MemberSpec): Member {
  const m = typeof spec === "string" ? { name: spec } : spec;
  return { url: `http://${m.name}.test:80`, tags: {}, state: "alive", ...m };
}

/**
 * The one in-memory membership source for tests: the test says what it
 * reports and when. Given members, it reports them as soon as it starts.
 */
export class TestSource implements MembershipSource {
  readonly kind: string;
  /** Where the source reports; set by start(). */
  sink: SnapshotSink | undefined;
  started = 0;
  stopped = 0;
  #initial: Member[] | undefined;

  constructor(members?: MemberSpec[], kind = "test") {
    this.#initial = members?.map(member);
    this.kind = kind;
  }

  async start(sink: SnapshotSink): Promise<void> {
    this.sink = sink;
    this.started++;
    if (this.#initial !== undefined) sink.snapshot(this.#initial);
  }

  async stop(): Promise<void> {
    this.stopped++;
  }

  /** Reports a snapshot of these members. */
  send(...members: MemberSpec[]): void {
    this.set(members);
  }

  /** Reports a snapshot of these members. */
  set(members: MemberSpec[]): void {
    if (this.sink === undefined) throw new Error("TestSource: not started");
    this.sink.snapshot(members.map(member));
  }

  /** Reports the source down. */
  fail(error: Error): void {
    if (this.sink === undefined) throw new Error("TestSource: not started");
    this.sink.down(error);
  }
}
