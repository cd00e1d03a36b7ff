/**
 * The configurations the benchmark compares: every placement registered in
 * src/ring/placement/index.ts (built through Ring, exactly as the proxy runs
 * it), under each member order that changes its table, then every comparison
 * placement found in bench/placements/.
 */
import { readdirSync } from "node:fs";
import { type MemberOrder, memberOrders, sortMembers } from "../../src/ring/order.ts";
import { type PlacementName, placements } from "../../src/ring/placement/index.ts";
import type { Placement } from "../../src/ring/placement/placement.ts";
import { Ring } from "../../src/ring/ring.ts";
import type { ComparisonPlacement } from "./configuration.ts";
import { type Assignment, TableRing } from "./table-ring.ts";

export interface Configuration {
  /** Column and legend name, e.g. "jump+lexical". */
  name: string;
  about: string;
  /** ringroute's own (a Ring) or a comparison placement (a TableRing). */
  kind: "ringroute" | "comparison";
  build(members: readonly string[], partitions: number, replicas: number): Assignment;
  /** The bare placement over sorted members: what "build time" measures, alike for all. */
  table(members: readonly string[], partitions: number, replicas: number): Uint32Array;
}

const descriptions: Record<string, string> = {
  jump: "libring's jump hash",
  balanced: "ringroute's balanced placement",
  modulo: "partition mod n (Go cluster package, libring's Uniform)",
  vnodes: "hash ring, 150 vnodes a member (Maggie, Cloister)",
};

/** Whether a placement's owners (by name) change with the member order, probed on names where the orders differ. */
export function orderMatters(placement: PlacementName): boolean {
  const probes = [
    Array.from({ length: 12 }, (_, i) => `web-${i}`),
    ["ip-10-0-2-9", "ip-10-0-10-3", "ip-10-0-1-200", "ip-10-12-0-1", "ip-10-9-0-1", "db", "web-2", "web-10"],
  ];
  for (const members of probes) {
    for (const replicas of [1, 3]) {
      const config = { partitions: 512, replicas, placement };
      const [first, ...others] = memberOrders.map((order) => Ring.build(members, { ...config, order }));
      for (const other of others) {
        for (let p = 0; p < 512; p++) {
          for (let r = 0; r < replicas; r++) {
            if (first?.owner(p, r) !== other.owner(p, r)) return true;
          }
        }
      }
    }
  }
  return false;
}

export function ringrouteConfigurations(): Configuration[] {
  const configurations: Configuration[] = [];
  for (const placement of Object.keys(placements) as PlacementName[]) {
    const sensitive = orderMatters(placement);
    const orders: MemberOrder[] = sensitive ? [...memberOrders] : ["lexical"];
    for (const order of orders) {
      const about = descriptions[placement] ?? `ringroute placement "${placement}"`;
      configurations.push({
        name: sensitive ? `${placement}+${order}` : placement,
        about: sensitive ? `${about}, ${order} member order` : `${about}, any member order`,
        kind: "ringroute",
        build: (members, partitions, replicas) => Ring.build(members, { partitions, replicas, placement, order }),
        table: bare(placements[placement], order),
      });
    }
  }
  return configurations;
}

/** Every bench/placements/*.ts, in file-name order: adding one to the comparison is adding a file. */
export async function comparisonConfigurations(): Promise<Configuration[]> {
  const folder = new URL("../placements/", import.meta.url);
  const files = readdirSync(folder)
    .filter((file) => file.endsWith(".ts"))
    .sort();
  const configurations: Configuration[] = [];
  for (const file of files) {
    const module: { comparison?: ComparisonPlacement } = await import(new URL(file, folder).href);
    const entry = module.comparison;
    if (entry === undefined) throw new Error(`bench/placements/${file} exports no \`comparison\``);
    configurations.push({
      name: entry.name,
      about: entry.about,
      kind: "comparison",
      build: (members, partitions, replicas) =>
        new TableRing(members, partitions, replicas, entry.placement, entry.order),
      table: bare(entry.placement, entry.order),
    });
  }
  return configurations;
}

function bare(placement: Placement, order: MemberOrder) {
  return (members: readonly string[], partitions: number, replicas: number) =>
    placement(sortMembers(members, order), partitions, Math.min(replicas, members.length));
}
