import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { send, startBackends } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";
import { until } from "./helpers/until.ts";

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

interface Running {
  child: ChildProcess;
  proxy: string;
  admin: string;
  output: () => string;
  exit: Promise<number | null>;
}

/** Starts `ringroute serve ARGS` on ephemeral loopback ports and waits for both addresses. */
async function serve(args: string[]): Promise<Running> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", cli, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RINGROUTE_CONFIG: "" } },
  );
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  // The two stable start-up lines name the bound addresses. Generous: on a loaded 2-core
  // machine, starting the CLI under tsx alone was measured at up to 60 s.
  const started = await until(
    () => {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}`);
      const proxy = /proxy listening on (http:\/\/[^,\s]+)/.exec(output)?.[1];
      const admin = /admin on (http:\/\/[\d.:]+):/.exec(output)?.[1];
      return proxy && admin ? { proxy, admin } : undefined;
    },
    { what: "the proxy listening and admin lines", timeout: 120_000 },
  ).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`serve did not start: ${error.message}\n${output}`);
  });
  return { child, ...started, output: () => output, exit };
}

test("an invalid value exits 2 with one line naming the field", async (t) => {
  const run = await ringroute(["serve", "--partitions", "abc"]);
  t.is(run.code, 2);
  t.is(run.stderr, 'ringroute: ring.partitions: must be a positive integer, got "abc"\n');
  const dir = mkdtempSync(join(tmpdir(), "ringroute-serve-"));
  const path = join(dir, "ringroute.yaml");
  writeFileSync(path, "proxy:\n  eject:\n    for: ten\n");
  const fromFile = await ringroute(["serve", "--config", path]);
  t.is(fromFile.code, 2);
  t.is(fromFile.stderr, 'ringroute: proxy.eject.for: must be a duration like 500ms, 2s or 1m, got "ten"\n');
});

test("an address already in use exits 2 naming listen", async (t) => {
  const [busy] = await startBackends(["busy"]);
  t.teardown(() => busy?.kill());
  const run = await ringroute([
    "serve",
    "--listen",
    (busy?.url ?? "").replace("http://", ""),
    "--admin",
    "127.0.0.1:0",
  ]);
  t.is(run.code, 2);
  // Log lines may come first (the config, the demo backends); the error is the last line, once.
  t.regex(run.stderr, /(^|\n)ringroute: listen: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)\n$/);
  t.is(run.stderr.split("ringroute: ").length, 2);
});

test("with no membership, serve runs three demo backends that answer with their name and the key", async (t) => {
  const running = await serve([]);
  t.teardown(() => running.child.kill("SIGKILL"));
  // The hint comes a little after the address lines serve() waited for: wait for it too.
  await until(() => /curl http:\/\/127\.0\.0\.1:\d+\/users\/42/.test(running.output()), {
    what: "the curl http://…/users/42 hint",
  });
  t.regex(running.output(), /\/metrics/);
  const ring = Ring.build(["demo-a", "demo-b", "demo-c"]);
  for (const key of ["/users/42", "/users/43", "/carts/1"]) {
    const reply = await send(running.proxy, key);
    t.is(reply.status, 200);
    t.deepEqual([reply.json.backend, reply.json.key], [ring.ownerOf(key), key]);
  }
  t.regex((await send(running.admin, "/metrics")).text, /ringroute_requests_total\{member="demo-/);
  running.child.kill("SIGTERM");
  t.is(await running.exit, 0);
});

test("SIGTERM lets a request in flight finish, refuses new ones, and exits 0", async (t) => {
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  for (const b of backends) {
    b.handler = (req, res) => {
      req.resume();
      // Only /slow is held; probes sent while the proxy is still accepting get answered at once.
      if (req.url?.startsWith("/slow")) held.then(() => res.end(`done by ${b.name}`));
      else res.end("probe");
    };
  }
  const members = backends.map((b) => `${b.name}=${b.url}`).join(",");
  const running = await serve(["--members", members, "--shutdown-timeout", "20s"]);
  t.teardown(() => running.child.kill("SIGKILL"));
  const inFlight = send(running.proxy, "/slow/1");
  await until(() => backends.some((b) => b.seen.length > 0), { what: "the slow request at a backend" });
  running.child.kill("SIGTERM");
  // Wait until the proxy has stopped accepting before releasing the held response.
  await until(
    () =>
      send(running.proxy, "/new").then(
        () => false,
        () => true,
      ),
    { what: "the proxy refusing new connections after SIGTERM", interval: 20 },
  );
  t.is(running.child.exitCode, null, "still running while the request is in flight");
  await t.throwsAsync(send(running.proxy, "/new"), undefined, "no new connections after SIGTERM");
  release();
  const reply = await inFlight.catch((e) => {
    throw new Error(`${e.message}\n${running.output()}`);
  });
  t.is(reply.status, 200);
  t.regex(reply.text, /^done by [ab]$/);
  t.is(await running.exit, 0);
});
