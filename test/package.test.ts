import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";

const read = async (file: string) => JSON.parse(await readFile(new URL(`../${file}`, import.meta.url), "utf8"));

test("every dependency with an install script is decided in allowScripts, so npm install prints no advisory", async (t) => {
  const pkg = await read("package.json");
  const lock = await read("package-lock.json");
  const withScripts = Object.entries(lock.packages as Record<string, { hasInstallScript?: boolean }>)
    .filter(([, entry]) => entry.hasInstallScript)
    .map(([path]) => path.replace(/^.*node_modules\//, ""))
    .sort();
  t.true(withScripts.length > 0, "the lock records install scripts");
  t.deepEqual(Object.keys(pkg.allowScripts ?? {}).sort(), [...new Set(withScripts)]);
});

test(".gitignore ignores no tracked file (examples/ringroute.yaml is part of the repository)", async (t) => {
  const { stdout } = await promisify(execFile)("git", ["ls-files", "--cached", "--ignored", "--exclude-standard"], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
  });
  t.is(stdout, "");
});

test("etcd3 (gRPC, protobufjs) is an optional peer dependency: a library install leaves it out, the repository keeps it for its tests", async (t) => {
  const pkg = await read("package.json");
  const lock = await read("package-lock.json");
  t.is(pkg.dependencies.etcd3, undefined);
  t.is(pkg.dependencies.cockatiel, undefined, "cockatiel is taken from etcd3's own dependencies");
  t.deepEqual(pkg.peerDependenciesMeta?.etcd3, { optional: true });
  t.is(pkg.devDependencies.etcd3, pkg.peerDependencies.etcd3);
  // In the lock, nothing that etcd3 brings is a production package.
  for (const name of ["etcd3", "@grpc/grpc-js", "protobufjs", "cockatiel"]) {
    t.true(lock.packages[`node_modules/${name}`]?.dev, `${name} is installed for development only`);
  }
});
