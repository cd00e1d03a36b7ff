import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";

const run = promisify(execFile);
const index = fileURLToPath(new URL("../src/index.ts", import.meta.url));

/** Packages a fresh process has loaded after `script` (CommonJS ones land in require.cache). */
async function loadedPackages(script: string): Promise<{ packages: string[]; out: unknown }> {
  const program = `
    import { createRequire } from "node:module";
    const lib = await import(${JSON.stringify(index)});
    const out = await (async () => { ${script} })();
    const files = Object.keys(createRequire(import.meta.url).cache);
    const packages = [...new Set(files.map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f)?.[1]).filter(Boolean))];
    console.log(JSON.stringify({ packages: packages.sort(), out }));
  `;
  const { stdout } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", program], {
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split("\n").pop() as string);
}

const heavy = ["etcd3", "protobufjs", "@grpc/grpc-js", "@grpc/proto-loader", "cockatiel", "pino", "pino-pretty"];

test("importing the library loads none of etcd's, gRPC's or pino's packages; every export is still there", async (t) => {
  const { packages, out } = await loadedPackages(
    `return ["Ring", "Cluster", "EtcdMember", "EtcdSource", "createProxy", "StaticSource"].map((n) => typeof lib[n]);`,
  );
  t.deepEqual(
    heavy.filter((p) => packages.includes(p)),
    [],
  );
  t.deepEqual(out, ["function", "function", "function", "function", "function", "function"]);
  // A Ring and a Cluster on a static source work without them.
  const used = await loadedPackages(`
    const cluster = new lib.Cluster({ source: new lib.StaticSource([{ name: "a", url: "http://127.0.0.1:1" }]) });
    await cluster.start();
    const owner = cluster.ownerOf("k")?.name;
    await cluster.stop();
    return owner;
  `);
  t.is(used.out, "a");
  t.deepEqual(
    heavy.filter((p) => used.packages.includes(p)),
    [],
  );
});

test("etcd3 is loaded when an etcd source is made, and works from there", async (t) => {
  const { packages, out } = await loadedPackages(`
    const source = new lib.EtcdSource({ endpoints: ["http://127.0.0.1:1"], cluster: "lazy" });
    const name = source.client.constructor.name;
    source.client.close();
    return name;
  `);
  t.is(out, "Etcd3");
  t.true(packages.includes("etcd3"));
});
