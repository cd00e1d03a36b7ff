/**
 * The chart README's values table, generated from helm/ringroute/values.schema.json
 * (a row for every property with a description, in schema order) and the
 * defaults in values.yaml, so the documentation cannot drift from what the
 * chart accepts. `tsx scripts/chart-values.ts` rewrites the table in place;
 * `--check` exits 1 when the README is out of date (test/helm.test.ts runs it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

export interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  [keyword: string]: unknown;
}

const chart = fileURLToPath(new URL("../helm/ringroute/", import.meta.url));
export const begin = "<!-- values table: generated from values.schema.json by scripts/chart-values.ts -->";
export const end = "<!-- end of values table -->";

/** Rows of `| key | default | description |` for every described property. */
export function valuesTable(schema: SchemaNode, values: unknown): string {
  const rows = ["| Key | Default | Description |", "| --- | --- | --- |"];
  const walk = (node: SchemaNode, path: string[], value: unknown) => {
    if (path.length > 0 && node.description !== undefined) {
      const shown = value === undefined ? "—" : `\`${JSON.stringify(value)}\``;
      rows.push(
        `| \`${path.join(".")}\` | ${shown.replaceAll("|", "\\|")} | ${node.description.replaceAll("|", "\\|")} |`,
      );
    }
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const next = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
      walk(child, [...path, key], next);
    }
  };
  walk(schema, [], values);
  return rows.join("\n");
}

/** The README with the text between the markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md needs the markers ${begin} and ${end}`);
  return `${readme.slice(0, from + begin.length)}\n\n${table}\n\n${readme.slice(to)}`;
}

/** The README as it should be, from the chart's current schema and values. */
export function expectedReadme(): { current: string; expected: string } {
  const schema = JSON.parse(readFileSync(`${chart}values.schema.json`, "utf8")) as SchemaNode;
  const values = parseYaml(readFileSync(`${chart}values.yaml`, "utf8"));
  const current = readFileSync(`${chart}README.md`, "utf8");
  return { current, expected: withTable(current, valuesTable(schema, values)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { current, expected } = expectedReadme();
  if (process.argv.includes("--check")) {
    if (current !== expected) {
      console.error("helm/ringroute/README.md: the values table is out of date; run tsx scripts/chart-values.ts");
      process.exit(1);
    }
  } else if (current !== expected) {
    writeFileSync(`${chart}README.md`, expected);
  }
}
