/**
 * A hand-written SVG chart: one panel per scenario, moved fraction of
 * primaries against cluster size on log-log axes, a line per configuration
 * and the optimum dashed. Pure: data in, markup out.
 */

export interface Series {
  name: string;
  /** [n, fraction moved] points, n ascending. */
  points: [number, number][];
}

export interface Panel {
  title: string;
  series: Series[];
  /** [n, optimal fraction] points. */
  optimum: [number, number][];
}

export interface Chart {
  title: string;
  subtitle: string;
  /** A line under the panels: what each point averages. */
  footer: string;
  panels: Panel[];
  /** Legend lines, one per series name, in series order. */
  legend: { name: string; about: string }[];
}

const colors = ["#d62728", "#ff7f0e", "#2ca02c", "#17becf", "#8c564b", "#1f77b4", "#9467bd", "#e377c2", "#bcbd22"];
const markers = ["circle", "square", "triangle", "diamond", "cross", "down", "plus", "star", "circle"] as const;

const panelWidth = 340;
const panelHeight = 270;
const columns = 3;
const margin = { left: 58, right: 14, top: 30, bottom: 44 };
const xTicks = [3, 5, 10, 30, 100, 300];
const yTicks = [0.001, 0.01, 0.1, 1];
const [xMin, xMax] = [3, 300];
const [yMin, yMax] = [0.001, 1];

export function renderChart(chart: Chart): string {
  const slots = chart.panels.length + 1; // the legend takes the last slot
  const rows = Math.ceil(slots / columns);
  const width = columns * panelWidth + 40;
  const height = 60 + rows * panelHeight + 24;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<text x="${width / 2}" y="48" text-anchor="middle" font-size="13" fill="#444">${escapeXml(chart.subtitle)}</text>`,
  ];
  chart.panels.forEach((panel, i) => {
    parts.push(renderPanel(panel, 10 + (i % columns) * panelWidth, 60 + Math.floor(i / columns) * panelHeight));
  });
  const legendIndex = chart.panels.length;
  parts.push(
    renderLegend(
      chart.legend,
      10 + (legendIndex % columns) * panelWidth,
      60 + Math.floor(legendIndex / columns) * panelHeight,
    ),
  );
  parts.push(
    `<text x="${width / 2}" y="${height - 10}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(chart.footer)}</text>`,
  );
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function renderPanel(panel: Panel, left: number, top: number): string {
  const x0 = left + margin.left;
  const x1 = left + panelWidth - margin.right;
  const y0 = top + panelHeight - margin.bottom;
  const y1 = top + margin.top;
  const x = (n: number) => x0 + ((Math.log(n) - Math.log(xMin)) / (Math.log(xMax) - Math.log(xMin))) * (x1 - x0);
  const y = (f: number) => {
    const clamped = Math.min(yMax, Math.max(yMin, f));
    return y0 - ((Math.log(clamped) - Math.log(yMin)) / (Math.log(yMax) - Math.log(yMin))) * (y0 - y1);
  };
  const out: string[] = [`<g>`];
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${top + 18}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`,
  );
  // Grid and ticks.
  for (const t of xTicks) {
    out.push(`<line x1="${f1(x(t))}" y1="${y1}" x2="${f1(x(t))}" y2="${y0}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${f1(x(t))}" y="${y0 + 16}" text-anchor="middle" fill="#333">${t}</text>`);
  }
  for (const t of yTicks) {
    out.push(`<line x1="${x0}" y1="${f1(y(t))}" x2="${x1}" y2="${f1(y(t))}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${x0 - 6}" y="${f1(y(t) + 4)}" text-anchor="end" fill="#333">${percent(t)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 34}" text-anchor="middle" fill="#222">members n (log scale)</text>`);
  out.push(
    `<text transform="translate(${left + 14} ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" fill="#222">partitions moved (log)</text>`,
  );
  // Optimum first, so the placements that reach it are drawn over it.
  out.push(
    `<polyline points="${panel.optimum.map(([n, v]) => `${f1(x(n))},${f1(y(v))}`).join(" ")}" fill="none" stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>`,
  );
  panel.series.forEach((series, i) => {
    const color = colors[i % colors.length] as string;
    // Earlier series are drawn wider, so coinciding lines stay visible as stripes.
    const width = Math.max(1.2, 3.6 - i * 0.4);
    out.push(
      `<polyline points="${series.points.map(([n, v]) => `${f1(x(n))},${f1(y(v))}`).join(" ")}" fill="none" stroke="${color}" stroke-width="${width.toFixed(1)}" stroke-opacity="0.85"/>`,
    );
    for (const [n, v] of series.points) out.push(marker(i, x(n), y(v), color));
  });
  out.push("</g>");
  return out.join("\n");
}

function renderLegend(legend: Chart["legend"], left: number, top: number): string {
  const out: string[] = [`<g>`];
  let row = top + 38;
  out.push(`<text x="${left + 20}" y="${top + 18}" font-size="13" font-weight="bold">Placements</text>`);
  // Fit the legend in its slot: rows shrink when there are many entries.
  const step = Math.min(30, (panelHeight - 50) / (legend.length + 1));
  legend.forEach((entry, i) => {
    const color = colors[i % colors.length] as string;
    out.push(
      `<line x1="${left + 20}" y1="${row - 4}" x2="${left + 50}" y2="${row - 4}" stroke="${color}" stroke-width="3"/>`,
    );
    out.push(marker(i, left + 35, row - 4, color));
    out.push(`<text x="${left + 58}" y="${row}" font-weight="bold">${escapeXml(entry.name)}</text>`);
    out.push(`<text x="${left + 58}" y="${row + 14}" font-size="10.5" fill="#555">${escapeXml(entry.about)}</text>`);
    row += step;
  });
  out.push(
    `<line x1="${left + 20}" y1="${row - 4}" x2="${left + 50}" y2="${row - 4}" stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>`,
  );
  out.push(`<text x="${left + 58}" y="${row}" font-weight="bold">optimum</text>`);
  out.push(
    `<text x="${left + 58}" y="${row + 14}" font-size="10.5" fill="#555">only the changed member's share moves</text>`,
  );
  out.push("</g>");
  return out.join("\n");
}

function marker(index: number, cx: number, cy: number, color: string): string {
  const shape = markers[index % markers.length];
  const [x, y] = [f1(cx), f1(cy)];
  const stroke = `stroke="${color}" stroke-width="1.5"`;
  switch (shape) {
    case "square":
      return `<rect x="${f1(cx - 3.5)}" y="${f1(cy - 3.5)}" width="7" height="7" fill="#fff" ${stroke}/>`;
    case "triangle":
      return `<path d="M${x} ${f1(cy - 4.5)}L${f1(cx + 4)} ${f1(cy + 3)}L${f1(cx - 4)} ${f1(cy + 3)}Z" fill="#fff" ${stroke}/>`;
    case "down":
      return `<path d="M${x} ${f1(cy + 4.5)}L${f1(cx + 4)} ${f1(cy - 3)}L${f1(cx - 4)} ${f1(cy - 3)}Z" fill="${color}" ${stroke}/>`;
    case "diamond":
      return `<path d="M${x} ${f1(cy - 5)}L${f1(cx + 5)} ${y}L${x} ${f1(cy + 5)}L${f1(cx - 5)} ${y}Z" fill="${color}" ${stroke}/>`;
    case "cross":
      return `<path d="M${f1(cx - 4)} ${f1(cy - 4)}L${f1(cx + 4)} ${f1(cy + 4)}M${f1(cx - 4)} ${f1(cy + 4)}L${f1(cx + 4)} ${f1(cy - 4)}" ${stroke}/>`;
    case "plus":
      return `<path d="M${f1(cx - 5)} ${y}L${f1(cx + 5)} ${y}M${x} ${f1(cy - 5)}L${x} ${f1(cy + 5)}" ${stroke}/>`;
    case "star":
      return `<circle cx="${x}" cy="${y}" r="2" fill="${color}" ${stroke}/>`;
    default:
      return `<circle cx="${x}" cy="${y}" r="3.5" fill="#fff" ${stroke}/>`;
  }
}

function percent(fraction: number): string {
  const value = fraction * 100;
  return `${value >= 1 ? value.toFixed(0) : value.toString()}%`;
}

function f1(value: number): string {
  return value.toFixed(1);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
