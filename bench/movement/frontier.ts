/**
 * The balance/movement frontier: for each setting (balanced at several
 * balance factors, and the other placements), how far above the optimum a
 * join or a leave moves partitions, against how busy the busiest member is.
 * Chains of random memberships: the rings of the first 2, 3, …, 101 of 101
 * random names, so each step is a join read forwards and a leave read
 * backwards, at every n from 3 to 100. Pure apart from the clock: settings
 * in, rows and a chart out.
 */
import type { BalanceFactor } from "../../src/ring/placement/placement.ts";
import { Ring } from "../../src/ring/ring.ts";
import { seededRandom } from "../stats.ts";
import type { Configuration } from "./configurations.ts";
import { moved } from "./metrics.ts";
import type { Assignment } from "./table-ring.ts";

export interface Setting {
  name: string;
  build(members: readonly string[], partitions: number): Assignment;
}

export interface FrontierRow {
  name: string;
  /** Busiest member over the mean at the largest n (mean over chains). */
  busiest: number;
  /** Join and leave at the largest n, × optimum (mean over chains). */
  join: number;
  leave: number;
  /** Mean over n of the per-n means, × optimum. */
  meanJoin: number;
  meanLeave: number;
  /** The n whose mean join or leave is worst, and that value. */
  worst: number;
  worstN: number;
  worstKind: "join" | "leave";
}

export const balanceFactors: BalanceFactor[] = [1.05, 1.1, 1.25, 1.5, "auto"];

export function balancedSettings(factors = balanceFactors): Setting[] {
  return factors.map((balanceFactor) => ({
    name: `balanced f=${balanceFactor === "auto" ? "auto" : balanceFactor.toFixed(2)}`,
    build: (members, partitions) =>
      Ring.build(members, { partitions, replicas: 1, placement: "balanced", balanceFactor }),
  }));
}

export function otherSettings(configurations: Configuration[]): Setting[] {
  return configurations
    .filter((c) => c.name !== "balanced")
    .map((c) => ({ name: c.name, build: (members, partitions) => c.build(members, partitions, 1) }));
}

/** Random hostnames, as the movement scenarios use. */
function names(random: () => number, count: number): string[] {
  const found = new Set<string>();
  const octet = () => Math.floor(random() * 256);
  while (found.size < count) found.add(`ip-10-${octet()}-${octet()}-${octet()}`);
  return [...found];
}

export function frontier(
  settings: Setting[],
  options: { partitions: number; largest: number; chains: number; seed: number },
  progress: (line: string) => void = () => {},
): FrontierRow[] {
  const { partitions, largest, chains, seed } = options;
  return settings.map((setting) => {
    const join = new Float64Array(largest + 2);
    const leave = new Float64Array(largest + 2);
    let busiest = 0;
    const started = Date.now();
    for (let chain = 0; chain < chains; chain++) {
      const members = names(seededRandom(seed * 1000 + chain), largest + 1);
      let before = setting.build(members.slice(0, 2), partitions);
      for (let n = 2; n <= largest; n++) {
        const after = setting.build(members.slice(0, n + 1), partitions);
        const ratio = moved(before, after).primaries / (partitions / (n + 1));
        join[n] = (join[n] as number) + ratio / chains;
        leave[n + 1] = (leave[n + 1] as number) + ratio / chains;
        if (n === largest) {
          const loads = [...before.loads.values()].map((l) => l[0] ?? 0);
          busiest += Math.max(...loads) / (partitions / largest) / chains;
        }
        before = after;
      }
    }
    let meanJoin = 0;
    let meanLeave = 0;
    let worst = 0;
    let worstN = 0;
    let worstKind: "join" | "leave" = "join";
    for (let n = 3; n <= largest; n++) {
      meanJoin += (join[n] as number) / (largest - 2);
      meanLeave += (leave[n] as number) / (largest - 2);
      for (const [kind, value] of [
        ["join", join[n] as number],
        ["leave", leave[n] as number],
      ] as const) {
        if (value > worst) [worst, worstN, worstKind] = [value, n, kind];
      }
    }
    progress(`${setting.name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return {
      name: setting.name,
      busiest,
      join: join[largest] as number,
      leave: leave[largest] as number,
      meanJoin,
      meanLeave,
      worst,
      worstN,
      worstKind,
    };
  });
}

export function frontierTable(rows: FrontierRow[], largest: number): string {
  const f = (x: number) => x.toFixed(2);
  const lines = [
    `| setting | busiest / mean at n = ${largest} | join × opt at n = ${largest} | leave × opt at n = ${largest} | mean over n = 3..${largest} (join / leave) | worst n |`,
    "|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${f(r.busiest)} | ${f(r.join)} | ${f(r.leave)} | ${f(r.meanJoin)} / ${f(r.meanLeave)} | ${f(r.worst)} (${r.worstKind}, n = ${r.worstN}) |`,
    ),
  ];
  return lines.join("\n");
}

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * One point per setting: busiest/mean (x) against movement × optimum at the
 * largest n (filled) and at its worst n (hollow, joined by a line), log y.
 */
export function frontierChart(
  rows: FrontierRow[],
  caption: { title: string; subtitle: string; footer: string },
): string {
  const width = 760;
  const height = 520;
  const box = { left: 70, right: 250, top: 70, bottom: 60 };
  const plotW = width - box.left - box.right;
  const plotH = height - box.top - box.bottom;
  const xMax = Math.max(2.2, Math.ceil(Math.max(...rows.map((r) => r.busiest)) * 10 + 1) / 10);
  const [xMin, yMin] = [1, 0.9];
  const yMax = Math.max(4, ...rows.map((r) => r.worst * 1.2));
  const x = (v: number) => box.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const y = (v: number) => box.top + plotH - (Math.log(v / yMin) / Math.log(yMax / yMin)) * plotH;
  const colors = [
    "#d62728",
    "#ff7f0e",
    "#2ca02c",
    "#17becf",
    "#1f77b4",
    "#8c564b",
    "#9467bd",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#000000",
  ];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold">${escapeXml(caption.title)}</text>`,
    `<text x="${width / 2}" y="46" text-anchor="middle" font-size="12" fill="#444">${escapeXml(caption.subtitle)}</text>`,
    `<rect x="${box.left}" y="${box.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
  ];
  for (let v = 1; v <= xMax + 1e-9; v += 0.2) {
    parts.push(
      `<line x1="${x(v)}" y1="${box.top}" x2="${x(v)}" y2="${box.top + plotH}" stroke="#eee"/>`,
      `<text x="${x(v)}" y="${box.top + plotH + 16}" text-anchor="middle">${v.toFixed(1)}</text>`,
    );
  }
  for (const v of [1, 1.5, 2, 3, 5, 10, 20, 50, 100].filter((t) => t >= yMin && t <= yMax)) {
    parts.push(
      `<line x1="${box.left}" y1="${y(v)}" x2="${box.left + plotW}" y2="${y(v)}" stroke="${v === 1 ? "#888" : "#eee"}"${v === 1 ? ' stroke-dasharray="4 3"' : ""}/>`,
      `<text x="${box.left - 6}" y="${y(v) + 4}" text-anchor="end">${v}×</text>`,
    );
  }
  parts.push(
    `<text x="${box.left + plotW / 2}" y="${height - 22}" text-anchor="middle">busiest member / mean load (lower is more even)</text>`,
    `<text transform="translate(18 ${box.top + plotH / 2}) rotate(-90)" text-anchor="middle">partitions moved × optimum (log)</text>`,
  );
  rows.forEach((r, i) => {
    const color = colors[i % colors.length] as string;
    const typical = (r.join + r.leave) / 2;
    parts.push(
      `<line x1="${x(r.busiest)}" y1="${y(typical)}" x2="${x(r.busiest)}" y2="${y(r.worst)}" stroke="${color}" stroke-width="1.5"/>`,
      `<circle cx="${x(r.busiest)}" cy="${y(typical)}" r="5" fill="${color}"/>`,
      `<circle cx="${x(r.busiest)}" cy="${y(r.worst)}" r="5" fill="#fff" stroke="${color}" stroke-width="2"/>`,
    );
    if (r.name.startsWith("balanced ")) {
      parts.push(
        `<text x="${x(r.busiest) + 8}" y="${y(r.worst) + 4}" font-size="11" fill="${color}">${escapeXml(r.name.slice(9))}</text>`,
      );
    }
    const ly = box.top + 10 + i * 20;
    parts.push(
      `<circle cx="${width - box.right + 20}" cy="${ly}" r="5" fill="${color}"/>`,
      `<text x="${width - box.right + 32}" y="${ly + 4}">${escapeXml(r.name)}</text>`,
    );
  });
  const ly = box.top + 10 + rows.length * 20 + 10;
  parts.push(
    `<circle cx="${width - box.right + 20}" cy="${ly}" r="5" fill="#555"/>`,
    `<text x="${width - box.right + 32}" y="${ly + 4}">at n = 100 (join and leave)</text>`,
    `<circle cx="${width - box.right + 20}" cy="${ly + 20}" r="5" fill="#fff" stroke="#555" stroke-width="2"/>`,
    `<text x="${width - box.right + 32}" y="${ly + 24}">worst n from 3 to 100</text>`,
    `<text x="${width / 2}" y="${height - 4}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(caption.footer)}</text>`,
    "</svg>",
    "",
  );
  return parts.join("\n");
}
