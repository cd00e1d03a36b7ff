import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { type Backend, send, startBackends } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";
import { closeSession, curl, request, sendAs, session } from "./helpers/h2.ts";
import { inEachShape, serve } from "./helpers/shapes.ts";
import { until, within } from "./helpers/until.ts";

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

inEachShape(
  "with no membership, serve runs three demo backends that answer with their name and the key",
  async (t, shape) => {
    const running = await serve(t, shape, []);
    // The hint comes a little after the address lines serve() waited for: wait for it too.
    await until(() => /curl http:\/\/127\.0\.0\.1:\d+\/users\/42/.test(running.stderr()), {
      what: "the curl http://…/users/42 hint",
    });
    t.regex(running.stderr(), /\/metrics/);
    const ring = Ring.build(["demo-a", "demo-b", "demo-c"]);
    for (const key of ["/users/42", "/users/43", "/carts/1"]) {
      const reply = await sendAs(shape.client, running.proxy, key);
      t.is(reply.status, 200);
      t.deepEqual([reply.json.backend, reply.json.key], [ring.ownerOf(key), key]);
    }
    const metrics = (await send(running.admin, "/metrics")).text;
    t.regex(metrics, /ringroute_requests_total\{member="demo-/);
    t.regex(metrics, new RegExp(`^ringroute_requests_total\\{[^}]*protocol="${shape.client}"\\} \\d+$`, "m"));
    running.child.kill("SIGTERM");
    t.is(await running.exit, 0);
  },
  { clients: ["http/1.1", "h2"] },
);

inEachShape(
  "SIGTERM lets a request in flight finish, refuses new ones, and exits 0",
  async (t, shape) => {
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
    const running = await serve(t, shape, ["--members", members, "--shutdown-timeout", "20s"]);
    const inFlight = sendAs(shape.client, running.proxy, "/slow/1");
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
      throw new Error(`${e.message}\n${running.stderr()}`);
    });
    t.is(reply.status, 200);
    t.regex(reply.text, /^done by [ab]$/);
    t.is(await running.exit, 0);
  },
  { clients: ["http/1.1", "h2"] },
);

/** What a new connection sent one request got: a status, or the socket error's code. */
function tryOnce(proxy: string): Promise<string> {
  const { hostname, port } = new URL(proxy);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let data = "";
    socket.setEncoding("latin1");
    socket.on("connect", () => socket.write("GET /k HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    socket.on("close", () => resolve(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? `closed after ${data.length} bytes`));
  });
}

inEachShape(
  "SIGTERM with shutdownDelay: /readyz 503 at once, traffic served through the delay, then refused, never reset",
  async (t, shape) => {
    const backends = await startBackends(["a", "b"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const members = backends.map((b) => `${b.name}=${b.url}`).join(",");
    const running = await serve(t, shape, ["--members", members, "--shutdown-delay", "3s", "--shutdown-timeout", "2s"]);
    t.is((await send(running.admin, "/readyz")).status, 200);
    running.child.kill("SIGTERM");
    await until(async () => (await send(running.admin, "/readyz")).status === 503, { what: "/readyz 503" });
    t.is((await send(running.proxy, "/during/delay")).status, 200, "still served during the delay");
    // New connections, one after another, until the proxy refuses them: each is answered, refused,
    // or (accepted as the listener closed, its request not yet read within the drain's grace) closed
    // cleanly before a byte; never reset by the proxy. The one reset allowed is the kernel's: a
    // connection whose handshake completed in the instant the listening socket closed, never
    // accepted — so the very next attempt must be refused.
    const seen = new Set<string>();
    let previous = "";
    for (;;) {
      const got = await tryOnce(running.proxy);
      seen.add(got);
      if (got === "ECONNREFUSED") break;
      if (previous === "ECONNRESET") t.fail(`a reset was not the listener closing: the next connection got ${got}`);
      if (got !== "200" && got !== "closed after 0 bytes" && got !== "ECONNRESET")
        t.fail(`a new connection during shutdown got ${got}`);
      previous = got;
    }
    t.true(seen.has("200"), "served during the delay");
    t.is(await within(running.exit, { what: "serve to exit", timeout: 30_000 }), 0);
  },
);

inEachShape("the access log: one whole JSON line a request, also from concurrent clients", async (t, shape) => {
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  const members = backends.map((b) => `${b.name}=${b.url}`).join(",");
  const running = await serve(t, shape, ["--members", members]);
  // Long paths: a line near 2 KB, so several workers' unsynchronised writes would tear them.
  const paths = Array.from({ length: 200 }, (_, i) => `/k/${i}/${"x".repeat(2000)}`);
  for (let i = 0; i < paths.length; i += 20) {
    const replies = await Promise.all(paths.slice(i, i + 20).map((p) => send(running.proxy, p)));
    for (const reply of replies) t.is(reply.status, 200);
  }
  running.child.kill("SIGTERM");
  t.is(await running.exit, 0);
  const lines = running
    .stdout()
    .split("\n")
    .filter((line) => line !== "");
  const records = lines.map((line) => JSON.parse(line) as { path: string; status: number });
  t.deepEqual(records.map((r) => r.path).sort(), [...paths].sort());
  t.true(records.every((r) => r.status === 200));
});

/** Writes the members file (atomically) listing these name → URL pairs. */
function membersFile(dir: string) {
  const file = join(dir, "members.txt");
  return {
    file,
    write(list: [string, string][]) {
      writeFileSync(`${file}.tmp`, list.map(([name, url]) => `${name} ${url}\n`).join(""));
      renameSync(`${file}.tmp`, file);
    },
  };
}

inEachShape("a member's new URL under the same name is routed to at once", async (t, shape) => {
  const backends = await startBackends(["a", "b", "b2"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  const [a, b, b2] = backends as [Backend, Backend, Backend];
  const dir = mkdtempSync(join(tmpdir(), "ringroute-url-"));
  const members = membersFile(dir);
  members.write([
    ["a", a.url],
    ["b", b.url],
  ]);
  writeFileSync(
    join(dir, "ringroute.yaml"),
    `membership:\n  file:\n    path: ${members.file}\n    pollInterval: 100ms\n`,
  );
  const running = await serve(t, shape, ["--config", join(dir, "ringroute.yaml")]);
  const ring = Ring.build(["a", "b"]);
  const keys = Array.from({ length: 40 }, (_, i) => `/users/${i}`).filter((k) => ring.ownerOf(k) === "b");
  for (const key of keys) t.is((await send(running.proxy, key)).json.backend, "b");
  members.write([
    ["a", a.url],
    ["b", b2.url],
  ]);
  // Every process routes b's keys to the new address: each new connection may reach another worker.
  await until(
    async () => {
      for (const key of keys) if ((await send(running.proxy, key)).json.backend !== "b2") return false;
      return true;
    },
    { what: "b's keys at b's new URL, from every worker" },
  );
  const ringView = (await send(running.admin, "/ring")).json;
  t.is(ringView.checksum, ring.checksum, "the same ring");
  if (shape.workers > 1) {
    t.is(ringView.workers.length, shape.workers);
    for (const w of ringView.workers) t.is(w.version, ringView.routingVersion, "every worker on the latest version");
  }
});

inEachShape(
  "SIGHUP: an invalid file is counted and changes nothing; listen and workers are named as needing a restart",
  async (t, shape) => {
    const backends = await startBackends(["a", "b"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const dir = mkdtempSync(join(tmpdir(), "ringroute-hup-"));
    const path = join(dir, "ringroute.yaml");
    const members = backends.map((b) => `      - { name: ${b.name}, url: "${b.url}" }`).join("\n");
    const config = (extra: string) => writeFileSync(path, `membership:\n  static:\n    members:\n${members}\n${extra}`);
    const addresses = "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n";
    config(`${addresses}workers: ${shape.workers}\n`);
    const running = await serve(t, shape, ["--config", path], { addressFlags: false });
    config(`${addresses}workers: ${shape.workers}\nring: { partitions: nope }\n`);
    running.child.kill("SIGHUP");
    await until(() => running.logs().find((e) => String(e.msg).startsWith("SIGHUP: config not reloaded")), {
      what: "the refused reload line",
    });
    const metrics = (await send(running.admin, "/metrics")).text;
    t.regex(metrics, /^ringroute_config_reloads_total\{result="invalid"\} 1$/m);
    t.regex(metrics, /^ringroute_config_reloads_total\{result="applied"\} 0$/m);
    config(`listen: 127.0.0.1:1\nadmin: 127.0.0.1:0\nworkers: 3\nproxy: { retry: { attempts: 1 } }\n`);
    running.child.kill("SIGHUP");
    const applied = await until(
      () => running.logs().find((e) => e.msg !== undefined && String(e.msg).startsWith("SIGHUP: config reloaded")),
      {
        what: "the reload line",
      },
    );
    t.like(applied, { restart: ["listen", "workers"] });
    t.regex(String(applied.msg), /listen, workers take effect at the next restart/);
    t.true((applied.applied as string[]).includes("proxy"));
    t.is((await send(running.proxy, "/users/1")).status, 200);
    t.regex((await send(running.admin, "/metrics")).text, /^ringroute_config_reloads_total\{result="applied"\} 1$/m);
  },
);

inEachShape(
  "SIGHUP with http2: false: new connections speak HTTP/1.1 only, an open h2 session goes on",
  async (t, shape) => {
    const backends = await startBackends(["a", "b"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const dir = mkdtempSync(join(tmpdir(), "ringroute-hup-h2-"));
    const path = join(dir, "ringroute.yaml");
    const members = backends.map((b) => `      - { name: ${b.name}, url: "${b.url}" }`).join("\n");
    const config = (extra: string) =>
      writeFileSync(
        path,
        `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nworkers: ${shape.workers}\nmembership:\n  static:\n    members:\n${members}\n${extra}`,
      );
    config("");
    const running = await serve(t, shape, ["--config", path], { addressFlags: false });
    const open = await session(running.proxy);
    t.teardown(() => closeSession(open));
    t.is((await request(open, "/users/1")).status, 200);
    config("http2: false\n");
    running.child.kill("SIGHUP");
    const applied = await until(
      () => running.logs().find((e) => e.msg !== undefined && String(e.msg).startsWith("SIGHUP: config reloaded")),
      { what: "the reload line" },
    );
    t.deepEqual(applied.applied, ["http2"]);
    // Every worker applies it: new connections, each accepted by any of them, get HTTP/1.1's 400 for the preface.
    await until(async () => (await curl(["--http2-prior-knowledge", `${running.proxy}/users/2`])).code !== 0, {
      what: "a new h2c connection refused",
    });
    for (let i = 0; i < 4; i++) {
      const refused = await curl(["--http2-prior-knowledge", `${running.proxy}/users/${i}`]);
      t.not(refused.code, 0, "the preface gets HTTP/1.1's 400, which curl cannot read as HTTP/2");
    }
    t.is((await send(running.proxy, "/users/3")).status, 200, "HTTP/1.1 as before");
    t.is((await request(open, "/users/4")).status, 200, "the session opened before the reload goes on");
  },
);

inEachShape(
  "a member that keeps failing is ejected, logged with the pid that ejected it, and counted once in /metrics",
  async (t, shape) => {
    const backends = await startBackends(["a", "b"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const [a, b] = backends as [Backend, Backend];
    const dir = mkdtempSync(join(tmpdir(), "ringroute-eject-"));
    const path = join(dir, "ringroute.yaml");
    writeFileSync(
      path,
      `membership:\n  static:\n    members:\n      - { name: a, url: "${a.url}" }\n      - { name: b, url: "${b.url}" }\nproxy: { eject: { after: 2, for: 60s } }\naccess: { log: false }\n`,
    );
    const running = await serve(t, shape, ["--config", path]);
    await b.kill();
    const ring = Ring.build(["a", "b"]);
    const keys = Array.from({ length: 200 }, (_, i) => `/users/${i}`).filter((k) => ring.ownerOf(k) === "b");
    for (const key of keys) {
      if (running.logs().some((e) => e.msg === "member ejected: failing repeatedly, skipped for a while")) break;
      const reply = await send(running.proxy, key);
      t.is(reply.status, 200, "failover answers from a");
      t.is(reply.json.backend, "a");
    }
    const ejected = await until(
      () => running.logs().find((e) => e.msg === "member ejected: failing repeatedly, skipped for a while"),
      { what: "the ejection line" },
    );
    t.like(ejected, { level: "warn", member: "b", component: "proxy" });
    const primary = running.child.pid;
    if (shape.workers > 1) t.not(ejected.pid, primary, "logged by the worker that ejected b");
    else t.is(ejected.pid, primary);
    const metrics = (await send(running.admin, "/metrics")).text;
    t.regex(metrics, /^ringroute_members\{state="ejected"\} 1$/m);
    t.regex(metrics, /^ringroute_member_up\{member="b"\} 0$/m);
  },
);
