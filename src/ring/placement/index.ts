import { balanced } from "./balanced.ts";
import { jump } from "./jump.ts";
import { modulo } from "./modulo.ts";
import type { Placement } from "./placement.ts";
import { vnodes } from "./vnodes.ts";

/** The placements a ring can be built with, by their config name. */
export const placements = { jump, balanced, modulo, vnodes } satisfies Record<string, Placement>;

export type PlacementName = keyof typeof placements;

export type { BalanceFactor, Placement, PlacementOptions } from "./placement.ts";
