/**
 * Hostile HTTP/2 clients against ringroute (`ringroute serve`, one process)
 * and HAProxy 2.6 (`bind … proto h2`), the same members behind both: for each
 * attack, sent frame by frame on a fresh connection, what the attacker got
 * (GOAWAY and RST_STREAM codes, whether the connection was closed), how many
 * of its requests reached a member, the slowest answer a well-behaved
 * node:http2 client on another connection got meanwhile, and the proxy's RSS
 * (from /proc) after it. The stalls (a body never finished, a window never
 * opened) take the proxies' timeouts to cut and are left to the tests
 * (test/hostile-h2.test.ts). Loopback only; each attack is bounded in frames
 * and waits at most `--settle` ms for the proxy to close the connection.
 *
 *   npm run bench:h2-hostile -- [--settle 2000] [--only rapidReset,pingFlood]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect as h2connect } from "node:http2";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  continuation,
  data,
  ErrorCode,
  errorName,
  FrameType,
  headerBlock,
  headersFrame,
  headersInPieces,
  hpack,
  ping,
  priority,
  RawH2Client,
  request,
  requestFields,
  rstStream,
  Setting,
  settings,
} from "../test/helpers/h2frames.ts";
import { haproxyPath } from "../test/helpers/haproxy.ts";
import { startServe } from "../test/helpers/serve.ts";
import { until } from "../test/helpers/until.ts";

/** One attack: sends its frames on `client`; requests it makes use paths under `/${name}/`. */
interface Attack {
  name: string;
  what: string;
  run(client: RawH2Client, prefix: string): Promise<void>;
}

/** Sends `count` frames made by `make`, `batch` to a write, while the connection is open. */
async function flood(client: RawH2Client, count: number, batch: number, make: (i: number) => Buffer[]) {
  for (let sent = 0; sent < count && !client.raw.ended; sent += batch) {
    const frames: Buffer[] = [];
    for (let i = sent; i < Math.min(count, sent + batch); i++) frames.push(...make(i));
    await client.send(...frames);
  }
}

const attacks: Attack[] = [
  {
    name: "rapidReset",
    what: "rapid reset: HEADERS then RST_STREAM, 10,000 times",
    run: (c, p) =>
      flood(c, 10_000, 100, (i) => [request(2 * i + 1, `${p}${i}`), rstStream(2 * i + 1, ErrorCode.CANCEL)]),
  },
  {
    name: "settingsFlood",
    what: "100,000 SETTINGS frames",
    run: (c) => flood(c, 100_000, 1_000, () => [settings([[Setting.MAX_CONCURRENT_STREAMS, 100]])]),
  },
  { name: "pingFlood", what: "100,000 PING frames", run: (c) => flood(c, 100_000, 1_000, (i) => [ping(i)]) },
  {
    name: "settingsEntries",
    what: "one SETTINGS frame of 2,000 entries",
    run: (c) => c.send(settings(Array.from({ length: 2_000 }, (_, i) => [Setting.MAX_CONCURRENT_STREAMS, i]))),
  },
  {
    name: "emptyData",
    what: "100,000 empty DATA frames on one stream",
    async run(c, p) {
      await c.send(request(1, `${p}1`, { method: "POST", endStream: false }));
      await flood(c, 100_000, 1_000, () => [data(1, "")]);
    },
  },
  {
    name: "headerList",
    what: "a 200 KB header list (2,000 fields)",
    async run(c, p) {
      const extra: [string, string][] = Array.from({ length: 2_000 }, (_, i) => [`x-h${i}`, "v".repeat(100)]);
      await c.send(headersInPieces(1, headerBlock(requestFields(`${p}1`, { extra })), 16_384, { endStream: true }));
    },
  },
  {
    name: "headerFields",
    what: "500 header fields (4 KB)",
    async run(c, p) {
      const extra: [string, string][] = Array.from({ length: 500 }, (_, i) => [`x${i}`, "v"]);
      await c.send(headersFrame(1, headerBlock(requestFields(`${p}1`, { extra })), { endStream: true }));
    },
  },
  {
    name: "continuationFlood",
    what: "HEADERS, then 100,000 CONTINUATION frames, never END_HEADERS",
    async run(c, p) {
      await c.send(headersFrame(1, headerBlock(requestFields(`${p}1`)), { endHeaders: false }));
      await flood(c, 100_000, 1_000, () => [continuation(1, headerBlock([["x-c", "y"]]), false)]);
    },
  },
  {
    name: "hpackBomb",
    what: "a 4 KB HPACK table entry, then named 4,000 times (16 MB decoded)",
    async run(c, p) {
      const entry = hpack.literalIndexed("x-bomb", "b".repeat(4_000));
      await c.send(headersFrame(1, Buffer.concat([headerBlock(requestFields(`${p}1`)), entry]), { endStream: true }));
      const refs = Buffer.concat(Array.from({ length: 4_000 }, () => hpack.indexed(62)));
      const block = Buffer.concat([headerBlock(requestFields(`${p}3`)), refs]);
      await c.send(headersInPieces(3, block, 16_384, { endStream: true }));
    },
  },
  {
    name: "tableSize",
    what: "an HPACK table size update to 1 MiB",
    async run(c, p) {
      const block = Buffer.concat([hpack.tableSizeUpdate(1 << 20), headerBlock(requestFields(`${p}1`))]);
      await c.send(headersFrame(1, block, { endStream: true }));
    },
  },
  {
    name: "priorityFlood",
    what: "100,000 PRIORITY frames for idle streams",
    run: (c) => flood(c, 100_000, 1_000, (i) => [priority(2 * i + 1, 0)]),
  },
  {
    name: "manyStreams",
    what: "10,000 streams opened, none ended",
    run: (c, p) => flood(c, 10_000, 100, (i) => [request(2 * i + 1, `${p}${i}`, { method: "POST", endStream: false })]),
  },
];

/** Members that count the requests they get by first path segment. */
async function startMembers(): Promise<{ servers: Server[]; ports: number[]; seen: Map<string, number> }> {
  const seen = new Map<string, number>();
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const server = createServer((req, res) => {
      const segment = (req.url ?? "").split("/")[1] ?? "";
      seen.set(segment, (seen.get(segment) ?? 0) + 1);
      req.resume();
      req.on("end", () => res.end("ok"));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  return { servers, ports, seen };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

interface Target {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startRingroute(ports: number[]): Promise<Target> {
  const members = ports.map((port, i) => `m${i}=http://127.0.0.1:${port}`).join(",");
  const serving = await startServe(["--members", members]);
  return {
    name: "ringroute",
    port: Number(new URL(serving.proxy).port),
    pid: serving.child.pid as number,
    stop: serving.stop,
  };
}

async function startHaproxy(ports: number[]): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-h2-hostile-"));
  const port = await freePort();
  const file = join(dir, "haproxy.cfg");
  await writeFile(
    file,
    [
      "global",
      "    nbthread 1",
      "defaults",
      "    mode http",
      "    timeout connect 2s",
      "    timeout client 5s",
      "    timeout server 30s",
      "    timeout http-request 5s",
      "frontend fe",
      `    bind 127.0.0.1:${port} proto h2`,
      "    default_backend members",
      "backend members",
      "    balance uri",
      "    hash-type consistent",
      ...ports.map((p, i) => `    server m${i} 127.0.0.1:${p}`),
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(haproxyPath, ["-db", "-f", file], { stdio: "ignore" });
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`HAProxy exited ${child.exitCode}`);
      const probe = await RawH2Client.connect(port).catch(() => undefined);
      probe?.close();
      return probe !== undefined;
    },
    { what: `HAProxy on 127.0.0.1:${port}`, timeout: 20_000, interval: 100 },
  );
  return {
    name: "HAProxy 2.6",
    port,
    pid: child.pid as number,
    async stop() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A node:http2 client asking GET /good/N every 20 ms; `end()` gives its slowest answer and its failures. */
function wellBehaved(port: number) {
  const session = h2connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  let worst = 0;
  let failed = 0;
  let stop = false;
  const loop = (async () => {
    for (let n = 0; !stop; n++) {
      const started = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const stream = session.request({ ":path": `/good/${n}` });
        stream.setTimeout(10_000, () => stream.close());
        stream.on("response", (headers) => resolve(headers[":status"] === 200));
        stream.on("error", () => resolve(false));
        stream.on("close", () => resolve(false));
        stream.resume();
      });
      if (!ok) failed++;
      worst = Math.max(worst, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async end() {
      stop = true;
      await loop;
      session.close();
      return { worst, failed };
    },
  };
}

async function attack(target: Target, a: Attack, seen: Map<string, number>, settle: number): Promise<string> {
  const good = wellBehaved(target.port);
  const client = await RawH2Client.connect(target.port);
  const started = performance.now();
  await a.run(client, `/${a.name}/`);
  await client.when(() => client.raw.ended, "the close", settle).catch(() => {});
  const ms = Math.round(performance.now() - started);
  const { worst, failed } = await good.end();
  const resets = new Map<string, number>();
  for (const code of client.resets.values()) resets.set(errorName(code), (resets.get(errorName(code)) ?? 0) + 1);
  const goaway = client.goaway;
  client.close();
  const parts = [
    goaway ? `GOAWAY ${errorName(goaway.code)}` : "",
    [...resets].map(([code, n]) => `${n}× RST ${code}`).join(", "),
    client.raw.ended ? `closed in ${ms} ms` : `open after ${ms} ms`,
    `${seen.get(a.name) ?? 0} at members`,
    `other client ≤ ${Math.round(worst)} ms${failed > 0 ? ` (${failed} failed)` : ""}`,
    `RSS ${await rssMb(target.pid)} MB`,
  ];
  const frames = client.frames.filter((f) => f.type === FrameType.HEADERS).length;
  if (frames > 0) parts.splice(2, 0, `${frames} HEADERS`);
  return parts.filter((p) => p !== "").join("; ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { settle: { type: "string", default: "2000" }, only: { type: "string" } } });
  const settle = Number(values.settle);
  const only = values.only?.split(",");
  const members = await startMembers();
  const rows = new Map<string, string[]>();
  for (const start of [startRingroute, startHaproxy]) {
    const target = await start(members.ports);
    console.error(`${target.name}: RSS ${await rssMb(target.pid)} MB at start`);
    try {
      for (const a of attacks) {
        if (only !== undefined && !only.includes(a.name)) continue;
        const row = await attack(target, a, members.seen, settle);
        console.error(`${target.name} ${a.name}: ${row}`);
        rows.set(a.what, [...(rows.get(a.what) ?? []), row]);
      }
    } finally {
      await target.stop();
    }
  }
  for (const server of members.servers) server.close();
  console.log("| attack | ringroute | HAProxy 2.6 |\n|---|---|---|");
  for (const [what, [ours, theirs]] of rows) console.log(`| ${what} | ${ours} | ${theirs} |`);
}

await main();
