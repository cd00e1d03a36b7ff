import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import ts from "typescript";
import { send, startBackends } from "./helpers/backends.ts";

// The README is documentation users copy from: its TypeScript blocks must
// compile against the library, the proxy example must run, and the outputs
// shown for `lookup` and `plan` must be what those commands print.
const run = promisify(execFile);
const repo = fileURLToPath(new URL("..", import.meta.url));
const cli = join(repo, "src/cli.ts");
const index = join(repo, "src/index.ts");

interface Block {
  lang: string;
  line: number;
  code: string;
}

async function blocks(): Promise<Block[]> {
  const text = await readFile(join(repo, "README.md"), "utf8");
  const found: Block[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)$/.exec(lines[i] as string);
    if (!open) continue;
    const start = i + 1;
    while (i + 1 < lines.length && lines[i + 1] !== "```") i++;
    found.push({ lang: open[1] as string, line: start, code: lines.slice(start, i + 1).join("\n") });
    i++;
  }
  return found;
}

/** A block as a module of its own, importing the library from source. */
function module(code: string): string {
  return `${code.replaceAll('from "ringroute"', `from ${JSON.stringify(index)}`)}\nexport {};\n`;
}

test("every TypeScript block of the README compiles against the library", async (t) => {
  const ts_ = (await blocks()).filter((b) => b.lang === "ts");
  t.true(ts_.length >= 5, "the library, Cluster, etcd, placement and proxy examples");
  const dir = await mkdtemp(join(tmpdir(), "ringroute-readme-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = await Promise.all(
    ts_.map(async (block) => {
      const file = join(dir, `readme-line-${block.line}.mts`);
      await writeFile(file, module(block.code));
      return file;
    }),
  );
  const config = ts.readConfigFile(join(repo, "tsconfig.json"), ts.sys.readFile).config;
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, repo);
  const program = ts.createProgram(files, { ...options, noEmit: true, rootDir: undefined });
  const problems = ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file === undefined || d.file.fileName.startsWith(dir))
    .map((d) => {
      const where = d.file
        ? `README line ${Number(/line-(\d+)/.exec(d.file.fileName)?.[1]) + d.file.getLineAndCharacterOfPosition(d.start ?? 0).line}`
        : "";
      return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
  t.deepEqual(problems, []);
});

test("the README's 'Using the proxy from code' example runs and routes by its x-tenant header", async (t) => {
  const example = (await blocks()).find((b) => b.lang === "ts" && b.code.includes("createProxy({ cluster"));
  t.truthy(example);
  const backends = await startBackends(["web-1", "web-2"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  // Its fixed addresses become free loopback ports, and the elided part sends requests.
  let code = (example as Block).code
    .replace("http://127.0.0.1:9101", backends[0]?.url as string)
    .replace("http://127.0.0.1:9102", backends[1]?.url as string)
    .replace("proxy.listen(8080,", "proxy.listen(0,")
    .replace(
      "// …",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: code for the example, where `port` is defined
      "await (globalThis as any).readmeSend(`http://127.0.0.1:${port}`);",
    );
  t.not(code, (example as Block).code);
  code = module(code);
  const replies: { status: number; backend: string }[][] = [];
  (globalThis as { readmeSend?: unknown }).readmeSend = async (base: string) => {
    const out = [];
    for (const tenant of ["t-1", "t-2", "t-3", "t-4"]) {
      const reply = await send(base, "/any/path", { headers: { "x-tenant": tenant } });
      out.push({ status: reply.status, backend: reply.json?.backend });
    }
    const missing = await send(base, "/any/path");
    out.push({ status: missing.status, backend: "" });
    replies.push(out);
    return out;
  };
  const dir = await mkdtemp(join(tmpdir(), "ringroute-readme-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "example.mts");
  await writeFile(file, code);
  await import(file);
  const [out] = replies;
  t.truthy(out, "the example sent its requests");
  t.deepEqual(
    out?.slice(0, 4).map((r) => r.status),
    [200, 200, 200, 200],
  );
  t.true(out?.slice(0, 4).every((r) => r.backend === "web-1" || r.backend === "web-2"));
  t.is(out?.[4]?.status, 400, "no x-tenant header: the key is missing");
});

test("the README's lookup and plan sessions print what the commands print", async (t) => {
  const sessions = (await blocks()).filter((b) => b.lang === "console");
  const commands: { command: string; expected: string[]; line: number }[] = [];
  for (const block of sessions) {
    const lines = block.code.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const command = /^\$ (?:npx )?(ringroute (?:lookup|plan) .*)$/.exec(lines[i] as string)?.[1];
      if (command === undefined) continue;
      const expected: string[] = [];
      while (i + 1 < lines.length && !(lines[i + 1] as string).startsWith("$ ")) expected.push(lines[++i] as string);
      commands.push({ command, expected, line: block.line + i });
    }
  }
  t.true(commands.length >= 4, "lookup, plan, plan --json and a bad flag");
  for (const { command, expected, line } of commands) {
    // Words as a shell splits them here: single quotes group and are removed.
    const args = (command.match(/'[^']*'|\S+/g) ?? []).slice(1).map((word) => word.replace(/^'(.*)'$/, "$1"));
    const result = await run(process.execPath, ["--import", "tsx", cli, ...args], { cwd: repo }).catch(
      (error: { stdout: string; stderr: string }) => error,
    );
    const printed = `${result.stdout}${result.stderr}`.trimEnd().split("\n");
    t.deepEqual(printed, expected, `README line ${line}: ${command}`);
  }
});

test("the README's links within itself reach a heading, and its flag tables list each flag once", async (t) => {
  const text = await readFile(join(repo, "README.md"), "utf8");
  // GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
  const slug = (heading: string) =>
    heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replaceAll(" ", "-");
  const anchors = new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
  const links = [...text.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] as string);
  t.true(links.length > 5);
  t.deepEqual(
    links.filter((l) => !anchors.has(l)),
    [],
  );
  const section = text.slice(text.indexOf("### Ring flags of `lookup` and `plan`"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| flag |")));
  const flags = [...table.matchAll(/^\| `(--[\w-]+)/gm)].map((m) => m[1] as string);
  t.deepEqual(flags, [...new Set(flags)], "each flag once");
});

test("serve --help offers every placement", async (t) => {
  const { commandHelp } = await import("../src/commands/command.ts");
  const { serve } = await import("../src/commands/serve.ts");
  const { placements } = await import("../src/ring/placement/index.ts");
  const line = commandHelp(serve)
    .split("\n")
    .find((l) => l.includes("--placement"));
  for (const name of Object.keys(placements)) t.regex(line ?? "", new RegExp(`\\b${name}\\b`), name);
});
