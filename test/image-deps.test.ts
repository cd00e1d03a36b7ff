import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The Dockerfile's `deps` stage's install command (its RUN lines that run `npm install`), continuations joined. */
function depsInstall(): string {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const stage = /^FROM \S+ AS deps$([\s\S]*?)^FROM /m.exec(dockerfile)?.[1];
  if (stage === undefined) throw new Error("the Dockerfile has no deps stage");
  return stage
    .split("\n")
    .filter((line) => line.startsWith("RUN ") && line.includes("npm install"))
    .map((line) => line.slice(4))
    .join(" && ");
}

// The image cannot be built here; its dependency stage's command is run as written on a copy of
// package.json and the lock, from npm's cache (filled by the repository's own `npm install`).
test("the image's dependency stage installs etcd3 and its tree at the lock's versions, and no dev tool", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-image-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of ["package.json", "package-lock.json"]) copyFileSync(join(root, file), join(dir, file));
  await promisify(execFile)("sh", ["-ec", depsInstall()], {
    cwd: dir,
    env: { ...process.env, npm_config_offline: "true", npm_config_loglevel: "error" },
    timeout: 170_000,
  });
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")).packages;
  const installed = JSON.parse(readFileSync(join(dir, "node_modules/.package-lock.json"), "utf8")).packages;
  for (const name of ["etcd3", "@grpc/grpc-js", "protobufjs", "cockatiel", "pino", "undici"]) {
    t.is(installed[`node_modules/${name}`]?.version, lock[`node_modules/${name}`].version, name);
  }
  const differing = Object.keys(installed).filter((path) => installed[path].version !== lock[path]?.version);
  t.deepEqual(differing, [], "every installed package is the lock's");
  for (const tool of ["typescript", "ava", "@biomejs/biome", "tsx", "fast-check"]) {
    t.false(existsSync(join(dir, "node_modules", tool)), `${tool} stays out of the image`);
  }
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      "-e",
      'const { Etcd3 } = require("etcd3"); const c = new Etcd3({ hosts: "http://127.0.0.1:1" }); console.log(c.constructor.name); c.close()',
    ],
    { cwd: dir, timeout: 60_000 },
  );
  t.is(stdout.trim(), "Etcd3");
});
