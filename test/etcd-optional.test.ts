import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { ringroute } from "./helpers/cli.ts";

// etcd3 is an optional peer dependency. These run ringroute as an install
// without it: a preload makes resolving "etcd3" fail as Node does for a
// package that is not there (the repository itself keeps it installed).
const without = { NODE_OPTIONS: `--require ${fileURLToPath(new URL("helpers/without-etcd3.cjs", import.meta.url))}` };
const missing = "the etcd source needs the etcd3 package: npm install etcd3";

const dir = mkdtempSync(join(tmpdir(), "ringroute-noetcd-"));
const config = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};
const etcd = config("etcd.yaml", "membership:\n  etcd: { endpoints: [http://127.0.0.1:1], cluster: shop }\n");
const loopback = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];

test("without etcd3, check and serve with an etcd source exit 2 with one line naming the package to install", async (t) => {
  for (const command of ["check", "serve"]) {
    const run = await ringroute([command, "--config", etcd, ...loopback], "", without);
    t.is(run.code, 2, `${command}: ${run.stderr}`);
    t.is(run.stderr.trim().split("\n").pop(), `ringroute: membership.etcd: ${missing}`, command);
  }
});

test("without etcd3, the member sidecar exits 2 naming --etcd and the package, before contacting anything", async (t) => {
  const run = await ringroute(
    ["member", "--etcd", "http://127.0.0.1:1", "--name", "a", "--url", "http://127.0.0.1:2"],
    "",
    without,
  );
  t.is(run.code, 2, run.stderr);
  t.is(run.stderr.trim(), `ringroute: --etcd: ${missing}`);
});

test("without etcd3, every other source is unaffected: check passes for a static one", async (t) => {
  const file = config("static.yaml", "membership:\n  static: { members: [{ name: a, url: http://127.0.0.1:1 }] }\n");
  const run = await ringroute(["check", "--config", file], "", without);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /^config ok: .*membership static /);
});

test("without etcd3, the library imports and routes; only making an etcd source fails, with a ConfigError", async (t) => {
  const index = fileURLToPath(new URL("../src/index.ts", import.meta.url));
  const program = `
    const lib = await import(${JSON.stringify(index)});
    const ring = lib.Ring.build(["a", "b", "c"], { replicas: 2 });
    let error;
    try { new lib.EtcdSource({ endpoints: ["http://127.0.0.1:1"], cluster: "x" }); } catch (e) { error = e; }
    console.log(JSON.stringify({ owners: ring.ownersOf("k").length, etcdMember: typeof lib.EtcdMember, error: error && { name: error.name, field: error.field, message: error.message } }));
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", program],
    {
      env: { ...process.env, ...without },
      timeout: 120_000,
    },
  );
  t.deepEqual(JSON.parse(stdout.trim().split("\n").pop() as string), {
    owners: 2,
    etcdMember: "function",
    error: { name: "ConfigError", field: "membership.etcd", message: `membership.etcd: ${missing}` },
  });
});
