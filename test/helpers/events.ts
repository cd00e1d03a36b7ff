import { diff, type PartitionEvent } from "../../src/ring/diff.ts";
import { Ring, type RingConfig } from "../../src/ring/ring.ts";

/** A partition event as one readable line, so logs and expectations compare as strings. */
export const showEvent = (e: PartitionEvent): string =>
  e.type === "acquire"
    ? `acquire ${e.partition}/${e.replica} ${e.member} <- ${e.from ?? "-"}`
    : `release ${e.partition}/${e.replica} ${e.member} -> ${e.to ?? "-"}`;

/**
 * The partition events between two member sets, from rings built by the
 * test rather than by the cluster under test; sorted, and only those of
 * member `only` when given.
 */
export function expectedEvents(
  before: string[],
  after: string[],
  config: Partial<RingConfig>,
  only?: string,
): string[] {
  return diff(Ring.build(before, config), Ring.build(after, config))
    .filter((e) => only === undefined || e.member === only)
    .map(showEvent)
    .sort();
}
