/**
 * The movement benchmark's flags: which grid to run, which configurations,
 * and whether to write bench/results/ or only print. Pure: arguments in, a
 * plan out; a bad flag throws a RangeError whose message names it.
 */
import { parseArgs } from "node:util";
import { fullGrid, type Grid } from "./run.ts";

export interface Plan {
  grid: Grid;
  /** Configuration names to run (as in the table headers), or undefined for all. */
  only: string[] | undefined;
  /** True for --quick and any grid of your own: print the tables, write nothing. */
  printOnly: boolean;
}

const quickGrid: Grid = { sizes: [3, 10, 30], partitions: [512, 2048], replicas: [1, 3] };

export function planFromArgs(args: string[]): Plan {
  let values: { quick?: boolean; sizes?: string; partitions?: string; replicas?: string; only?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        quick: { type: "boolean" },
        sizes: { type: "string" },
        partitions: { type: "string" },
        replicas: { type: "string" },
        only: { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    throw new RangeError((error as Error).message);
  }
  const base = values.quick ? quickGrid : fullGrid;
  const custom = values.sizes !== undefined || values.partitions !== undefined || values.replicas !== undefined;
  return {
    grid: {
      sizes: values.sizes === undefined ? base.sizes : wholeNumbers("sizes", values.sizes),
      partitions: values.partitions === undefined ? base.partitions : wholeNumbers("partitions", values.partitions),
      replicas: values.replicas === undefined ? base.replicas : wholeNumbers("replicas", values.replicas),
    },
    only: values.only?.split(","),
    printOnly: values.quick === true || custom || values.only !== undefined,
  };
}

/** "59-100" or "10,30,100"; ranges and single numbers may mix. */
function wholeNumbers(flag: string, text: string): number[] {
  return text.split(",").flatMap((part) => {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    const from = Number(match?.[1]);
    const to = Number(match?.[2] ?? match?.[1]);
    if (match === null || from < 1 || to < from) {
      throw new RangeError(`--${flag}: expected positive whole numbers or ranges like 59-100, got "${part}"`);
    }
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}
