/**
 * Shutdown keeps its word: `ringroute serve` exits within shutdownTimeout
 * + 1 s whatever its members do, and clients looping on keep-alive
 * connections through SIGTERM lose no request: each one sent is answered,
 * or was never accepted.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ExecutionContext } from "ava";
import { fixed, header, RawClient, RecordingBackend, type Script } from "./helpers/raw.ts";
import { inEachShape, type Shape } from "./helpers/shapes.ts";
import { until, within } from "./helpers/until.ts";

/** The built CLI (`npm test` builds first; run `npm run build` before running this file alone). */
const cli = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

interface Running {
  child: ChildProcess;
  port: number;
  output: () => string;
  exit: Promise<number | null>;
}

/** Answers /hang/… never and everything else at once. */
const hangOnHang: Script = {
  early: true,
  answer(request, c) {
    if (request.url.startsWith("/hang/")) return;
    if (!request.complete) return;
    c.socket.write(fixed(200, `${request.method} ${request.url}`));
  },
};

/** Starts `ringroute serve` with one member and `yaml` appended to the config; finds the proxy's port by probing. */
async function serve(t: ExecutionContext, shape: Shape, member: RecordingBackend, yaml: string): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "ringroute-shutdown-"));
  const config = join(dir, "ringroute.yaml");
  writeFileSync(
    config,
    `membership:\n  static:\n    members:\n      - { name: solo, url: "${member.url}" }\naccess:\n  log: false\n${yaml}`,
  );
  const child = spawn(
    process.execPath,
    [
      cli,
      "serve",
      "--config",
      config,
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
      "--workers",
      String(shape.workers),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RINGROUTE_CONFIG: "" } },
  );
  let output = "";
  // Each chunk stamped with its arrival, to tell where a slow exit spent its time.
  const stamp = (chunk: string) =>
    (output += chunk.replace(/^(?=.)/gm, `[${new Date().toISOString().slice(17, 23)}] `));
  child.stdout?.setEncoding("utf8").on("data", stamp);
  child.stderr?.setEncoding("utf8").on("data", stamp);
  const exit = once(child, "exit").then(([code]) => code as number | null);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  // The proxy is the address whose probe reaches the member (the other one is the admin server).
  const probed = new Set<number>();
  const port = await until(
    async () => {
      for (const match of output.matchAll(/127\.0\.0\.1:(\d+)/g)) {
        const candidate = Number(match[1]);
        if (candidate === member.port || probed.has(candidate)) continue;
        probed.add(candidate);
        const probe = await RawClient.connect(candidate);
        await probe.send(`GET /probe/${candidate} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        await probe.when(() => probe.ended, "the probe's answer");
        probe.close();
        if (member.requests.some((r) => r.url === `/probe/${candidate}`)) return candidate;
      }
      if (child.exitCode !== null) throw new Error(`serve exited:\n${output}`);
      return undefined;
    },
    { what: "ringroute serve to listen", timeout: 30_000 },
  );
  return { child, port, output: () => output, exit };
}

inEachShape(
  "with a member that never answers, serve exits at shutdownTimeout, not when the member answers",
  async (t, shape) => {
    const member = await RecordingBackend.start("solo");
    t.teardown(() => member.close());
    member.script = hangOnHang;
    // The member would hold its requests for a minute; the exit must come at shutdownTimeout instead.
    const running = await serve(
      t,
      shape,
      member,
      "shutdownTimeout: 2s\nshutdownDelay: 0s\nproxy:\n  timeouts:\n    response: 60s\n    keepAlive: 60s\n",
    );
    const clients = await Promise.all([1, 2, 3].map(() => RawClient.connect(running.port)));
    t.teardown(() => {
      for (const c of clients) c.close();
    });
    for (const [i, client] of clients.entries()) await client.send(`GET /hang/${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await until(() => member.requests.filter((r) => r.url.startsWith("/hang/")).length === 3, {
      what: "three requests hanging at the member",
    });
    // And one idle keep-alive connection to the member, which must not hold the exit either.
    const quick = await RawClient.connect(running.port);
    await quick.send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await quick.when(() => quick.ended, "the quick GET's response");
    quick.close();
    running.child.kill("SIGTERM");
    const signalled = Date.now();
    t.log(`SIGTERM at ${new Date(signalled).toISOString().slice(17, 23)}`);
    // The bound is shutdownTimeout + 1 s (measured 2.1–2.2 s); the deadline only leaves room for a
    // starved machine, and stays far below the minute that waiting for the member would take.
    const code = await within(running.exit, { what: "exit soon after shutdownTimeout", timeout: 10_000 }).catch(
      async (error) => {
        await running.exit;
        throw new Error(
          `${(error as Error).message}; it exited after ${Date.now() - signalled} ms:\n${running.output()}`,
        );
      },
    );
    t.log(`exited ${Date.now() - signalled} ms after SIGTERM (shutdownTimeout 2000 ms)`);
    t.is(code, 0, running.output());
    await until(() => member.open === 0, { what: "every member connection closed by the exit" });
  },
);

/** A client that sends GETs one after another on keep-alive connections until the proxy stops accepting. */
async function loop(port: number, id: number, tally: { ok: number; lost: number; closes: number }): Promise<void> {
  let n = 0;
  for (;;) {
    let client: RawClient;
    try {
      client = await RawClient.connect(port);
    } catch {
      return; // no longer accepting: nothing was sent, nothing lost
    }
    try {
      for (;;) {
        const before = client.responses().messages.filter((m) => m.complete).length;
        if (client.ended) break;
        await client.send(`GET /loop/${id}/${n++} HTTP/1.1\r\nHost: x\r\n\r\n`).catch(() => {});
        const answered = await client.when(
          () => client.responses().messages.filter((m) => m.complete).length > before || client.ended,
          `an answer to loop ${id} request ${n}`,
        );
        const messages = client.responses().messages.filter((m) => m.complete);
        if (messages.length === before) {
          tally.lost++; // sent, and the connection ended without its response
          break;
        }
        tally.ok += answered ? 1 : 0;
        if (header(messages.at(-1) as { rawHeaders: string[] }, "connection")?.toLowerCase() === "close") {
          tally.closes++;
          break;
        }
      }
    } finally {
      client.close();
    }
  }
}

inEachShape("clients looping on keep-alive through SIGTERM (with shutdownDelay) lose no request", async (t, shape) => {
  const member = await RecordingBackend.start("solo");
  t.teardown(() => member.close());
  member.script = hangOnHang;
  const running = await serve(t, shape, member, "shutdownTimeout: 5s\nshutdownDelay: 1s\n");
  const tally = { ok: 0, lost: 0, closes: 0 };
  const loops = [0, 1, 2, 3].map((id) => loop(running.port, id, tally));
  await until(() => tally.ok >= 40, { what: "40 requests answered before SIGTERM" });
  const beforeSignal = tally.ok;
  running.child.kill("SIGTERM");
  const code = await within(running.exit, { what: "serve to exit after draining", timeout: 30_000 });
  await within(Promise.all(loops), { what: "the client loops to stop" });
  t.is(code, 0, running.output());
  t.is(tally.lost, 0, `lost ${tally.lost} of ${tally.ok + tally.lost}`);
  t.true(tally.ok > beforeSignal, "requests were served during shutdownDelay");
  // Every request the member executed was answered (the probe included).
  t.is(member.requests.filter((r) => r.url.startsWith("/loop/")).length, tally.ok);
});
