import type { MemberOrder } from "../../src/ring/order.ts";
import type { Placement } from "../../src/ring/placement/placement.ts";

/**
 * A placement the benchmark compares ringroute's against, without it being
 * one a ring can be built with. Each file in bench/placements/ exports one as
 * `comparison`; the benchmark picks every such file up.
 */
export interface ComparisonPlacement {
  /** Short name for tables and the chart's legend. */
  name: string;
  /** One line: what it is and who runs it. */
  about: string;
  /** The member order its table indexes into (hash-based ones ignore it). */
  order: MemberOrder;
  placement: Placement;
}
