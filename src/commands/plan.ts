import { ConfigError } from "../errors/config-error.ts";
import { movement } from "../ring/diff.ts";
import type { Ring } from "../ring/ring.ts";
import { memberNames } from "../utils/fields.ts";
import type { Command } from "./command.ts";
import { memberList, ringCommandFlags, ringFromCommandLine } from "./ring-flags.ts";

export const plan: Command = {
  name: "plan",
  synopsis: "ringroute plan [flags] [--add a,b] [--remove c] [--json]",
  description: "Shows what adding and removing members would move, before you do it.",
  flags: [
    ...ringCommandFlags,
    { name: "add", value: "a,b", help: "members that join" },
    { name: "remove", value: "c", help: "members that leave" },
    { name: "json", help: "one JSON object instead of a table" },
  ],
  async run({ values }) {
    const before = ringFromCommandLine(values);
    const add = values.add as string | undefined;
    const remove = values.remove as string | undefined;
    const added = add === undefined ? [] : memberNames(memberList(add), "--add");
    const removed = remove === undefined ? [] : memberNames(memberList(remove), "--remove");
    const result = planChange(before, added, removed);
    process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : formatPlan(result));
  },
};

/** What `plan --json` prints; outside checks read these names. */
export interface Plan {
  partitions: number;
  replicas: number;
  placement: string;
  /** `balanced`: the balance factor and the most primaries a member may hold before and after (null for other placements). */
  balance_factor: number | "auto" | null;
  cap: { before: number; after: number } | null;
  order: string;
  added: string[];
  removed: string[];
  moved_primaries: number;
  moved_replica_slots: number;
  /** The fewest primaries any placement must move: those the removed members held, or the newcomers' fair share, whichever is more. */
  optimal_primaries: number;
  /** Primaries per member before and after (0 where a member is absent). */
  members: Record<string, { before: number; after: number }>;
}

/** Compares `before` with the ring it becomes after adding and removing members. */
export function planChange(before: Ring, added: string[], removed: string[]): Plan {
  return comparePlan(before, ringAfter(before, added, removed), added, removed);
}

/** The ring `before` becomes after adding and removing members; throws ConfigError naming --add or --remove. */
export function ringAfter(before: Ring, added: readonly string[], removed: readonly string[]): Ring {
  for (const name of added) {
    if (before.has(name)) throw new ConfigError("--add", `"${name}" is already a member`);
  }
  for (const name of removed) {
    if (!before.has(name)) throw new ConfigError("--remove", `"${name}" is not a member`);
  }
  const gone = new Set(removed);
  const after = before.withMembers([...before.members.filter((m) => !gone.has(m)), ...added]);
  if (after.size === 0) throw new ConfigError("--remove", "would leave no members");
  return after;
}

/**
 * The plan's numbers for two rings of the same config, `added` and `removed`
 * being the members that differ: what `plan` prints, what the admin server's
 * /plan answers and what its ring change events report.
 */
export function comparePlan(before: Ring, after: Ring, added: readonly string[], removed: readonly string[]): Plan {
  const primaries = (ring: Ring, member: string) => ring.loads.get(member)?.[0] ?? 0;
  const members: Plan["members"] = {};
  for (const member of new Set([...before.members, ...after.members].sort())) {
    members[member] = { before: primaries(before, member), after: primaries(after, member) };
  }
  const { partitions, replicas, order } = before.config;
  const placement = before.placementName;
  const balanced = before.cap !== undefined && after.cap !== undefined;
  const heldByRemoved = removed.reduce((sum, m) => sum + primaries(before, m), 0);
  const moved = movement(before, after);
  return {
    partitions,
    replicas,
    placement,
    balance_factor: balanced ? before.config.balanceFactor : null,
    cap: balanced ? { before: before.cap as number, after: after.cap as number } : null,
    order,
    added: [...added],
    removed: [...removed],
    moved_primaries: moved.primaries,
    moved_replica_slots: moved.replicaSlots,
    optimal_primaries:
      after.size === 0 ? heldByRemoved : Math.max(heldByRemoved, Math.ceil((partitions * added.length) / after.size)),
    members,
  };
}

function formatPlan(plan: Plan): string {
  const percent = (n: number) => `${((100 * n) / plan.partitions).toFixed(1)}%`;
  const ratio =
    plan.optimal_primaries === 0 ? "" : ` (${(plan.moved_primaries / plan.optimal_primaries).toFixed(2)}× the optimum)`;
  const lines = [
    `${plan.partitions} partitions, ${plan.replicas} replicas, placement ${plan.placement}, order ${plan.order}`,
    ...(plan.cap === null
      ? []
      : [
          `balance factor ${plan.balance_factor}: at most ${plan.cap.before} primaries a member before, ${plan.cap.after} after`,
        ]),
    `add: ${plan.added.join(", ") || "-"}   remove: ${plan.removed.join(", ") || "-"}`,
    `moved primaries:     ${plan.moved_primaries} (${percent(plan.moved_primaries)})${ratio}`,
    `optimal primaries:   ${plan.optimal_primaries} (${percent(plan.optimal_primaries)})`,
    `moved replica slots: ${plan.moved_replica_slots}`,
    "",
  ];
  const names = Object.keys(plan.members);
  const width = Math.max(6, ...names.map((n) => n.length));
  lines.push(`${"member".padEnd(width)}  before   after`);
  for (const name of names) {
    const { before, after } = plan.members[name] as { before: number; after: number };
    lines.push(`${name.padEnd(width)}  ${String(before).padStart(6)}  ${String(after).padStart(6)}`);
  }
  return `${lines.join("\n")}\n`;
}
