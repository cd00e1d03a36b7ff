/**
 * Memory of /events with clients that never read. Starts a cluster at
 * P = 65536 on a hand-driven source with the admin server, connects
 * --clients raw sockets that ask for every partition event and then never
 * read, makes --changes ring changes (members joining), and prints the
 * process's memory after each step (after a full GC), and how many of
 * the clients the server still holds.
 *
 *   node --expose-gc --import tsx bench/sse-memory.ts --clients 10 --changes 10
 */
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import type { Member, MembershipSource, SnapshotSink } from "../src/membership/source.ts";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "10" },
    changes: { type: "string", default: "10" },
    partitions: { type: "string", default: "65536" },
    types: { type: "string", default: "acquire,release" },
  },
});
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");

class HandSource implements MembershipSource {
  readonly kind = "bench";
  sink: SnapshotSink | undefined;
  async start(sink: SnapshotSink) {
    this.sink = sink;
    sink.snapshot(members(3));
  }
  async stop() {}
}
const members = (n: number): Member[] =>
  Array.from({ length: n }, (_, i) => ({ name: `m${i}`, url: "http://127.0.0.1:9", tags: {}, state: "alive" }));

const source = new HandSource();
const cluster = new Cluster({ source, ring: { partitions: Number(values.partitions) } });
await cluster.start();
const metrics = new Metrics(cluster, { defaultMetrics: false });
const admin = createAdminServer({ cluster, metrics });
const { port } = await admin.listen(0, "127.0.0.1");

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const report = async (label: string) => {
  await sleep(200);
  gc();
  const m = process.memoryUsage();
  process.stdout.write(
    `${label.padEnd(22)} rss ${mb(m.rss).padStart(7)} MB  heap ${mb(m.heapUsed).padStart(7)} MB  external ${mb(m.external).padStart(7)} MB  history ${mb(admin.events.historyBytes).padStart(6)} MB  clients ${admin.events.size}\n`,
  );
};

await report("start");
const sockets: Socket[] = [];
for (let i = 0; i < Number(values.clients); i++) {
  const socket = connect(port, "127.0.0.1");
  socket.pause();
  socket.write(`GET /events?types=${values.types} HTTP/1.1\r\nHost: x\r\n\r\n`);
  sockets.push(socket);
}
while (admin.events.size < sockets.length) await sleep(10);
await report(`${sockets.length} clients connected`);
for (let change = 1; change <= Number(values.changes); change++) {
  source.sink?.snapshot(members(3 + change));
  await report(`after change ${change}`);
}
for (const socket of sockets) socket.destroy();
await admin.close();
metrics.close();
await cluster.stop();
