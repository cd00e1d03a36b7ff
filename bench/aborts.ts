/**
 * Aborted uploads under load: keep-alive GET clients loop against one
 * member through ringroute while, for about 3 % of requests, a client sends
 * a POST head and half its body, then goes away (FIN or RST, alternating).
 * Every second counts the GETs completed; the figure that matters is the
 * number of seconds with none (an aborted upload that held its member
 * connection until `timeouts.body` used to stall the member for its whole
 * pool). Everything runs in this process on loopback: a node:http member,
 * the proxy, raw-socket clients; bounded by `--seconds`.
 *
 *   npm run bench:aborts -- [--seconds 300] [--clients 32] [--abort-rate 0.03]
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { Cluster } from "../src/cluster.ts";
import { defaultConfig } from "../src/config.ts";
import { StaticSource } from "../src/membership/static.ts";
import { createProxy } from "../src/proxy/server.ts";

export interface AbortsOptions {
  seconds: number;
  /** Keep-alive GET clients looping. */
  clients: number;
  /** Aborted uploads started per completed GET. */
  abortRate: number;
}

export interface AbortsResult {
  /** GETs completed in each whole second. */
  perSecond: number[];
  /** Seconds with no completed GET. */
  stalled: number;
  completed: number;
  aborted: number;
  /** GETs answered with anything but 200. */
  failed: number;
}

/** Runs the mixed load for `seconds` and reports the completions per second. */
export async function runAborts(options: AbortsOptions): Promise<AbortsResult> {
  const member: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  member.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => member.listen(0, "127.0.0.1", resolve));
  const memberPort = (member.address() as AddressInfo).port;
  const cluster = new Cluster({ source: new StaticSource([{ name: "m", url: `http://127.0.0.1:${memberPort}` }]) });
  await cluster.start();
  const config = defaultConfig();
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy } });
  const { port } = await proxy.listen(0, "127.0.0.1");

  const started = performance.now();
  const end = started + options.seconds * 1000;
  const perSecond = new Array<number>(options.seconds).fill(0);
  let completed = 0;
  let aborted = 0;
  let failed = 0;
  let running = true;
  const sockets = new Set<Socket>();

  const abortOne = (n: number) => {
    aborted++;
    const socket = connect({ port, host: "127.0.0.1" });
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    socket.on("connect", () => {
      socket.write(`POST /upload/${n} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n${"x".repeat(1000)}`, () => {
        if (n % 2 === 0) socket.end();
        else socket.resetAndDestroy();
      });
    });
  };

  const loop = (id: number) =>
    new Promise<void>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1", noDelay: true });
      sockets.add(socket);
      let buffered = "";
      let n = 0;
      const next = () => {
        if (!running || performance.now() >= end) {
          socket.destroy();
          resolve();
          return;
        }
        socket.write(`GET /k/${id}/${n++ % 64} HTTP/1.1\r\nHost: x\r\n\r\n`);
      };
      socket.on("connect", next);
      socket.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("latin1");
        // node:http answers "ok" with Content-Length: 2; one response at a time on this connection.
        const endOfHead = buffered.indexOf("\r\n\r\n");
        if (endOfHead < 0 || buffered.length < endOfHead + 4 + 2) return;
        if (!buffered.startsWith("HTTP/1.1 200")) failed++;
        buffered = buffered.slice(endOfHead + 6);
        const second = Math.floor((performance.now() - started) / 1000);
        if (second < perSecond.length) perSecond[second] = (perSecond[second] as number) + 1;
        completed++;
        if (Math.random() < options.abortRate) abortOne(aborted);
        next();
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        resolve();
      });
    });

  // A loop whose connection broke starts again, so one failure does not end a client.
  const client = async (id: number) => {
    while (running && performance.now() < end) await loop(id);
  };
  const timer = setTimeout(() => (running = false), options.seconds * 1000 + 100);
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  clearTimeout(timer);
  running = false;
  for (const socket of sockets) socket.destroy();
  await proxy.close(1000);
  await new Promise<void>((resolve) => member.close(() => resolve()));
  member.closeAllConnections();
  await cluster.stop();
  return { perSecond, stalled: perSecond.filter((n) => n === 0).length, completed, aborted, failed };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "300" },
      clients: { type: "string", default: "32" },
      "abort-rate": { type: "string", default: "0.03" },
    },
  });
  const options: AbortsOptions = {
    seconds: Number(values.seconds),
    clients: Number(values.clients),
    abortRate: Number(values["abort-rate"]),
  };
  console.log(
    `aborted uploads: ${options.clients} GET clients, ${(options.abortRate * 100).toFixed(1)} % aborted POSTs, ${options.seconds} s`,
  );
  const result = await runAborts(options);
  const sorted = [...result.perSecond].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  console.log(`GETs completed: ${result.completed} (${result.failed} not 200); uploads aborted: ${result.aborted}`);
  console.log(`completions per second: min ${sorted[0]}, median ${median}, max ${sorted.at(-1)}`);
  console.log(`seconds with no completed GET: ${result.stalled} of ${options.seconds}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
