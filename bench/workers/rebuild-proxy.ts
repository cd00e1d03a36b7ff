/**
 * The proxy process of bench/rebuild.ts: a Cluster over `n` members (spread
 * over the given backend ports) and the routing proxy, with rings built in
 * place (`inline`) or on a thread (`thread`). The bench asks it over IPC to
 * change the membership and reports when each new ring is in place.
 *
 *   node --import tsx bench/workers/rebuild-proxy.ts inline|thread PORTS N PARTITIONS
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Cluster } from "../../src/cluster.ts";
import type { Member, MembershipSource, SnapshotSink } from "../../src/membership/source.ts";
import { createProxy } from "../../src/proxy/server.ts";
import { RingBuilder } from "../../src/serving/ring-builder.ts";

const [mode, portList, count, partitions] = process.argv.slice(2) as [string, string, string, string];
const ports = portList.split(",").map(Number);
const members: Member[] = Array.from({ length: Number(count) }, (_, i) => ({
  name: `m${String(i).padStart(4, "0")}`,
  url: `http://127.0.0.1:${ports[i % ports.length]}`,
  tags: {},
  state: "alive",
}));
const out = new Set<number>();

const source: MembershipSource & { sink?: SnapshotSink } = {
  kind: "bench",
  async start(sink) {
    this.sink = sink;
    sink.snapshot(members);
  },
  async stop() {},
};
const builder = mode === "thread" ? new RingBuilder({ nice: 19 }) : undefined;
const cluster = new Cluster({
  source,
  ring: { partitions: Number(partitions), replicas: 3, placement: "balanced" },
  build: builder?.build,
});
await cluster.start();
await cluster.idle();
const proxy = createProxy({ cluster });
const { port } = await proxy.listen(0, "127.0.0.1");
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();

let changedAt = 0;
cluster.listen({ ring: () => process.send?.({ type: "built", ms: performance.now() - changedAt }) });
process.on("message", (message: { type: string; member?: number }) => {
  if (message.type === "churn") {
    // Alternately takes a member out and puts it back: each is one full rebuild.
    const i = message.member ?? 0;
    if (out.has(i)) out.delete(i);
    else out.add(i);
    changedAt = performance.now();
    source.sink?.snapshot(members.filter((_, j) => !out.has(j)));
  } else if (message.type === "reset") {
    delay.reset();
  } else if (message.type === "delay") {
    process.send?.({ type: "delay", max: delay.max / 1e6, p99: delay.percentile(99) / 1e6 });
  } else if (message.type === "stop") {
    void proxy.close(0).then(async () => {
      await builder?.close();
      process.exit(0);
    });
  }
});
process.send?.({ type: "ready", port });
