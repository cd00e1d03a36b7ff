import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { promisify } from "node:util";
import test from "ava";
import { parse as parseYaml } from "yaml";
import { createAccessLog, createLogging } from "../src/commands/logging.ts";
import { parseConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import type { AccessRecord } from "../src/proxy/observer.ts";
import { type Serving, startServing } from "../src/serving/index.ts";
import { type Backend, send, startBackends } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";
import { inEachShape, serve } from "./helpers/shapes.ts";
import { type Certificate, selfSigned } from "./helpers/tls.ts";
import { until } from "./helpers/until.ts";

const run = promisify(execFile);

/** A writable that keeps what pino writes, one string a line. */
function lines() {
  const kept: string[] = [];
  return { kept, write: (line: string) => kept.push(line) };
}

test("JSON log lines carry an ISO time, the level by name and the message; setLevel reaches children", async (t) => {
  const out = lines();
  const { logger, setLevel } = await createLogging({ level: "info", format: "json" }, { destination: out });
  const child = logger.child({ component: "cluster" });
  child.info({ member: "a" }, "member joined the ring");
  child.debug("hidden at info");
  setLevel("debug");
  child.debug("shown at debug");
  const parsed = out.kept.map((line) => JSON.parse(line));
  t.is(parsed.length, 2);
  t.like(parsed[0], { level: "info", component: "cluster", member: "a", msg: "member joined the ring" });
  t.regex(parsed[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.like(parsed[1], { level: "debug", msg: "shown at debug" });
});

test("log.format auto is pretty on a terminal and JSON otherwise", async (t) => {
  const tty = lines();
  const pretty = await createLogging({ level: "info", format: "auto" }, { destination: tty, isTTY: true });
  pretty.logger.info("hello");
  const pipe = lines();
  const json = await createLogging({ level: "info", format: "auto" }, { destination: pipe, isTTY: false });
  json.logger.info("hello");
  t.like(JSON.parse(pipe.kept[0] as string), { msg: "hello", level: "info" });
  // pino-pretty as a destination is given JSON by pino; the pretty transform runs in the stream it builds.
  t.is(tty.kept.length, 1);
});

test("the access log writes one JSON line a record, with its time, and samples", async (t) => {
  const out = lines();
  const record: AccessRecord = {
    method: "GET",
    path: "/users/42",
    status: 200,
    partition: 7,
    member: "a",
    tried: 1,
    bytesIn: 0,
    bytesOut: 12,
    totalMs: 1.5,
    upstreamMs: 1.2,
    client: "127.0.0.1",
  };
  const all = createAccessLog({ log: true, sample: 1 }, out);
  all?.write(record);
  // Lines reach the stream at the end of the event-loop turn that wrote them.
  await new Promise((resolve) => setImmediate(resolve));
  t.is(out.kept.length, 1);
  const line = out.kept[0] as string;
  t.true(line.endsWith("\n"));
  const parsed = JSON.parse(line);
  t.like(parsed, record);
  t.regex(parsed.time, /Z$/);
  // Durations print to two decimals, as the README shows them, whatever the clock's float noise.
  all?.write({ ...record, totalMs: 14.288037000000259, upstreamMs: 0.004999999 });
  await new Promise((resolve) => setImmediate(resolve));
  t.regex(out.kept[1] as string, /"totalMs":14\.29,"upstreamMs":0,/);

  t.is(createAccessLog({ log: false, sample: 1 }, out), undefined);
  const draws = [0.1, 0.6, 0.24, 0.9];
  const sampled = lines();
  const quarter = createAccessLog({ log: true, sample: 0.25 }, sampled, () => draws.shift() as number);
  for (let i = 0; i < 4; i++) quarter?.write(record);
  quarter?.close();
  t.is(sampled.kept.join("").split("\n").filter(Boolean).length, 2, "draws below 0.25 are logged");
});

/** Many keep-alive requests at once until stopped; counts what came back other than 200. */
function load(proxy: string, clients = 8) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const { hostname, port } = new URL(proxy);
  let running = true;
  let sent = 0;
  const failures: string[] = [];
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const req = request({ host: hostname, port, path: `/users/${i}`, agent }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) failures.push(`${res.statusCode} for /users/${i}`);
          resolve();
        });
      });
      req.on("error", (error) => {
        failures.push(error.message);
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: clients }, async (_, c) => {
    while (running) await one(c * 100_000 + sent++);
  });
  return {
    get sent() {
      return sent;
    },
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

function configFor(backends: Backend[], extra: string): string {
  const members = backends.map((b) => `      - { name: ${b.name}, url: "${b.url}" }`).join("\n");
  return `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nmembership:\n  static:\n    members:\n${members}\n${extra}`;
}

inEachShape(
  "a reload under load loses no request; ring.partitions changes the checksum; a bad config changes nothing",
  async (t, shape) => {
    const backends = await startBackends(["a", "b", "c"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const config = {
      ...parseConfig(parseYaml(configFor(backends, "ring: { partitions: 512 }\naccess: { log: false }\n"))),
      workers: shape.workers,
    };
    const serving: Serving = await startServing(config);
    t.teardown(() => serving.close());
    const proxy = `http://127.0.0.1:${serving.proxy.port}`;
    const before = serving.cluster.ring.checksum;

    const traffic = load(proxy);
    await until(() => traffic.sent > 50, { what: "requests flowing before the reload" });
    const next = parseConfig(
      parseYaml(
        configFor(backends, "ring: { partitions: 1024 }\naccess: { log: false }\nproxy: { retry: { attempts: 1 } }\n"),
      ),
    );
    const reloaded = await serving.reload({ ...next, workers: shape.workers, listen: { host: "127.0.0.1", port: 1 } });
    const sentAtReload = traffic.sent;
    await until(() => traffic.sent > sentAtReload + 50, { what: "requests flowing after the reload" });
    await traffic.stop();

    t.deepEqual(traffic.failures, [], "no request failed across the reload");
    t.deepEqual(reloaded.restart, ["listen"], "the listen address waits for a restart");
    t.true(reloaded.applied.includes("ring") && reloaded.applied.includes("proxy"), reloaded.applied.join(","));
    t.is(serving.cluster.ring.config.partitions, 1024);
    t.not(serving.cluster.ring.checksum, before);
    t.is(serving.cluster.ring.size, 3);

    const admin = `http://127.0.0.1:${serving.admin.port}`;
    await t.throwsAsync(
      serving.reload({ ...next, tls: { cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem" } }),
      { instanceOf: ConfigError, message: /^tls\.cert: cannot read/ },
    );
    // A config that does not even load (a bad file on SIGHUP) counts as invalid too.
    await t.throwsAsync(
      serving.reload(() => {
        throw new ConfigError("ring.partitions", "must be a positive integer");
      }),
      { instanceOf: ConfigError },
    );
    const metrics = (await send(admin, "/metrics")).text;
    t.regex(metrics, /ringroute_config_reloads_total\{result="applied"\} 1\b/);
    t.regex(metrics, /ringroute_config_reloads_total\{result="invalid"\} 2\b/);
    t.is(serving.cluster.ring.config.partitions, 1024, "the invalid config changed nothing");
    t.is((await send(proxy, "/users/1")).status, 200);
  },
);

/** The certificate subject a new TLS connection to `port` is shown. */
async function servedName(port: number, ca: string): Promise<string> {
  const socket = connect({ host: "127.0.0.1", port, ca: readFileSync(ca) });
  await once(socket, "secureConnect");
  const name = socket.getPeerCertificate().subject.CN;
  socket.destroy();
  return String(name);
}

inEachShape(
  "serve: HTTPS with curl --cacert, JSON logs on stderr, access lines on stdout, SIGHUP reloads certificates and logs",
  async (t, shape) => {
    const dir = mkdtempSync(join(tmpdir(), "ringroute-tls-"));
    const first = selfSigned("first", dir);
    const second = selfSigned("second", dir);
    const backends = await startBackends(["a", "b"]);
    t.teardown(() => Promise.all(backends.map((b) => b.kill())));
    const path = join(dir, "ringroute.yaml");
    const tls = (c: Certificate) => `tls: { cert: ${c.certFile}, key: ${c.keyFile} }\n`;
    writeFileSync(path, configFor(backends, tls(first)));

    const running = await serve(t, shape, ["--config", path]);
    const { child, logs } = running;
    const stdout = () => running.stdout();
    const exit = running.exit;
    const listening = running.proxy;
    t.regex(listening, /^https:/);
    const port = Number(new URL(listening).port);

    const curl = await run("curl", ["-sS", "--cacert", first.certFile, `${listening}/users/42`]);
    const seen = JSON.parse(curl.stdout);
    t.is(seen.headers["x-forwarded-proto"], "https");
    t.is(await servedName(port, first.certFile), "first");

    for (const entry of logs()) {
      t.regex(entry.time, /Z$/, JSON.stringify(entry));
      t.true(["info", "warn", "error", "debug"].includes(entry.level), JSON.stringify(entry));
      t.false(String(entry.msg).startsWith("ringroute:"), "no program prefix");
    }
    t.true(logs().some((e) => e.msg === "member joined the ring" && e.member === "a"));
    t.true(logs().some((e) => e.msg === "ring changed" && typeof e.checksum === "string" && e.moved > 0));
    t.true(logs().some((e) => /^try: curl https:\/\/127\.0\.0\.1:\d+\/users\/42/.test(e.msg)));

    if (shape.workers > 1) {
      // Each worker logs for itself, with its own pid.
      const pids = new Set(
        logs()
          .filter((e) => e.msg === "worker ready")
          .map((e) => e.pid),
      );
      t.is(pids.size, shape.workers);
      t.false(pids.has(child.pid));
    }
    const access = await until(
      () =>
        stdout()
          .split("\n")
          .find((line) => line.includes('"/users/42"')),
      {
        what: "the access line of /users/42",
      },
    );
    t.like(JSON.parse(access), { method: "GET", path: "/users/42", status: 200, tried: 1, client: "127.0.0.1" });

    writeFileSync(path, configFor(backends, `${tls(second)}log: { level: debug }\n`));
    child.kill("SIGHUP");
    await until(() => logs().some((e) => e.msg === "SIGHUP: config reloaded"), { what: "the reload line" });
    t.is(await servedName(port, second.certFile), "second", "new connections get the new certificate");

    writeFileSync(path, configFor(backends, `${tls(second)}ring: { partitions: nope }\n`));
    child.kill("SIGHUP");
    const refused = await until(() => logs().find((e) => String(e.msg).startsWith("SIGHUP: config not reloaded")), {
      what: "the refused reload line",
    });
    t.like(refused, { level: "error", field: "ring.partitions" });
    t.is(
      (
        await run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "--cacert",
          second.certFile,
          `${listening}/k`,
        ])
      ).stdout,
      "200",
    );

    child.kill("SIGTERM");
    t.is(await exit, 0);
    t.true(logs().some((e) => e.msg === "stopped"));
  },
);

test("an ejection and its end are logged", async (t) => {
  const backends = await startBackends(["a", "b"]);
  t.teardown(() => Promise.all(backends.map((b) => b.kill())));
  const out = lines();
  const { logger } = await createLogging({ level: "info", format: "json" }, { destination: out });
  const clock = new ManualClock(Date.now());
  const yaml = configFor(backends, "access: { log: false }\nproxy: { eject: { after: 2, for: 10s } }\n");
  const serving = await startServing(parseConfig(parseYaml(yaml)), { logger, clock });
  t.teardown(() => serving.close());
  const proxy = `http://127.0.0.1:${serving.proxy.port}`;
  await backends[0]?.kill();
  // Keys until member a, now gone, has failed twice in a row; failover answers each from b.
  for (let i = 0; !out.kept.some((l) => l.includes("member ejected")); i++) {
    t.is((await send(proxy, `/k/${i}`)).status, 200);
    if (i > 200) t.fail("a was never ejected");
  }
  const logs = () => out.kept.map((l) => JSON.parse(l));
  t.like(
    logs().find((e) => e.msg.startsWith("member ejected")),
    { level: "warn", member: "a" },
  );
  t.false(logs().some((e) => e.msg === "member back from ejection"));
  await clock.tick(11_000);
  t.like(
    logs().find((e) => e.msg === "member back from ejection"),
    { level: "info", member: "a" },
  );
});
