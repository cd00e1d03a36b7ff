/**
 * A membership source that coordinates hand-offs, driven by the test: it
 * routes by whatever table the test sets, and the cluster hears of it as it
 * hears of an etcd hand-off step (a snapshot of the same members). Plus the
 * tables of one hand-off from ring `before` to ring `after`, step by step.
 */
import type { Coordination } from "../../src/handoff/coordination.ts";
import { RoutingTable, type SlotState } from "../../src/handoff/table.ts";
import type { Member } from "../../src/membership/source.ts";
import type { Ring } from "../../src/ring/ring.ts";
import { type MemberSpec, member, TestSource } from "./source.ts";

export class CoordinatedSource extends TestSource {
  /** The table the proxy routes by; undefined before the first version. */
  table: RoutingTable | undefined;
  readonly coordination: Coordination;
  #members: Member[] = [];

  constructor(members?: MemberSpec[]) {
    super(members, "coordinated");
    this.#members = members?.map(member) ?? [];
    const source = this;
    this.coordination = {
      get version() {
        return source.table?.version;
      },
      get stableVersion() {
        return source.table?.version;
      },
      get consistent() {
        return (
          (source.table?.counts.ready ?? 0) === (source.table?.ring.config.partitions ?? 0) * (source.table?.ranks ?? 0)
        );
      },
      get partitionsInHandoff() {
        return (source.table?.counts.moving ?? 0) + (source.table?.counts.none ?? 0);
      },
      stalled: undefined,
      handoffWait: 2000,
      routing: () => source.table,
    };
  }

  override set(members: MemberSpec[]): void {
    this.#members = members.map(member);
    super.set(members);
  }

  /** Routes by `table` from now on and tells the cluster, as a hand-off step does. */
  route(table: RoutingTable): void {
    this.table = table;
    super.set(this.#members);
  }
}

/**
 * The routing table of a hand-off from `before` to `after` (same partitions
 * and owner count) at `step`: every slot whose owner changes is still at its
 * old owner ("moving"), at nobody ("none"), or at its new owner ("ready");
 * the other slots are ready at their owner throughout.
 */
export function handoffStep(before: Ring, after: Ring, step: SlotState, version: number): RoutingTable {
  const slots: { member: string | undefined; state: SlotState }[] = [];
  for (let p = 0; p < after.config.partitions; p++) {
    for (let r = 0; r < after.ownerCount; r++) {
      const was = before.owner(p, r);
      const now = after.owner(p, r);
      if (was === now || step === "ready") slots.push({ member: now, state: "ready" });
      else if (step === "moving" && was !== undefined) slots.push({ member: was, state: "moving" });
      else slots.push({ member: undefined, state: "none" });
    }
  }
  return RoutingTable.coordinated(after, slots, version);
}
