/**
 * A partitioned in-memory cache that hands its partitions over through etcd.
 *
 * Each instance registers in etcd, owns the partitions the ring gives it and
 * keeps their entries in memory. When the ring changes, an instance that
 * loses a partition saves it to the shared store (`release`), and only then
 * does the new owner load it (`acquire`): the Go cluster package's
 * "relinquish, then the next owner takes over". A ringroute proxy in front
 * routes each key to whichever instance holds its partition ready, so no
 * request meets an instance that has not loaded the data yet.
 *
 *   node --import tsx examples/etcd-cache/service.ts --name cache-1 --port 9101 \
 *     --etcd http://127.0.0.1:2379 --store /tmp/cache-store
 *
 * GET /KEY answers the value (404 if absent), PUT /KEY stores the body. A key
 * whose partition this instance does not hold (`member.holds`) answers 421,
 * and so does a request whose `x-ringroute-version` (sent by the proxy) is a
 * version this instance has not taken up yet: it cannot know yet whether it
 * owns the key there. Between saving a partition and the new owner loading
 * it, reads are served from the saved copy and writes answer 503 (retry
 * shortly), like the Go package's advice to buffer during a transition.
 * `x-cache-from: memory | saved` says which answered a read.
 *
 * Fencing: an instance that loses its etcd lease (or cannot reach etcd for a
 * lease TTL) drops what it holds in memory (`onFenced`), since others take
 * its partitions over from then on, and answers 421 until hand-offs give it
 * partitions again. SIGTERM leaves gracefully: drain, wait until every
 * partition is loaded by its new owner, then revoke the lease.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Cluster, EtcdMember, EtcdSource } from "../../src/index.ts";

/** The ring every instance and the proxy agree on (the proxy's `ring` section must match). */
export const cacheRing = { partitions: 64, replicas: 1 };

export interface CacheOptions {
  name: string;
  /** Port to listen on (0: any free one). */
  port: number;
  etcd: string[];
  /** A directory every instance can read and write: where released partitions wait for their next owner. */
  store: string;
  cluster?: string;
  /** Lease TTL in milliseconds. */
  ttl?: number;
  /** How long a save or load may take before it is given up (ms). */
  handoffTimeout?: number;
  /** How long leaving waits for the partitions to be loaded elsewhere (ms). */
  leaveTimeout?: number;
}

export interface CacheService {
  url: string;
  cluster: Cluster;
  member: EtcdMember;
  /** Entries by partition, for a look inside. */
  data: Map<number, Map<string, string>>;
  /** Stops at once (no hand-over): a crash. */
  kill(): Promise<void>;
  /** Leaves the cluster after handing every partition over, then stops serving. */
  close(): Promise<void>;
}

export async function startCacheService(options: CacheOptions): Promise<CacheService> {
  const data = new Map<number, Map<string, string>>();
  /** Partitions saved for their next owner, still readable here until a stable version says it has them. */
  const handedOver = new Map<number, Map<string, string>>();
  const file = (partition: number) => join(options.store, `${partition}.json`);
  await mkdir(options.store, { recursive: true });

  const source = new EtcdSource({ endpoints: options.etcd, cluster: options.cluster ?? "cache" });
  const cluster = new Cluster({ source, local: options.name, ring: cacheRing });
  const server: Server = createServer((req, res) => {
    const key = req.url ?? "/";
    const partition = cluster.ring.partitionOf(key);
    const wanted = Number(req.headers["x-ringroute-version"] ?? 0);
    if (wanted > (member.version ?? 0)) {
      res.writeHead(421, { "content-type": "text/plain" }).end(`version ${wanted} not reached yet\n`);
      return;
    }
    const entries = member.holds(partition, 0) ? data.get(partition) : undefined;
    const saved = handedOver.get(partition);
    if (entries === undefined && saved !== undefined) {
      const value = req.method === "GET" ? saved.get(key) : undefined;
      if (value !== undefined) res.writeHead(200, { "content-type": "text/plain", "x-cache-from": "saved" }).end(value);
      else if (req.method === "GET") res.writeHead(404).end();
      else res.writeHead(503, { "retry-after": "1" }).end("partition moving\n");
      return;
    }
    if (entries === undefined) {
      res
        .writeHead(421, { "content-type": "text/plain" })
        .end(`partition ${partition} is not held by ${options.name}\n`);
      return;
    }
    if (req.method === "PUT") {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        entries.set(key, Buffer.concat(chunks).toString());
        res.writeHead(204).end();
      });
      return;
    }
    const value = entries.get(key);
    if (value === undefined) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": "text/plain", "x-cache-from": "memory" }).end(value);
  });
  server.listen(options.port, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const member: EtcdMember = new EtcdMember(source, {
    name: options.name,
    url,
    ttl: options.ttl,
    handoffTimeout: options.handoffTimeout,
    leaveTimeout: options.leaveTimeout,
    ring: cacheRing,
    handoff: {
      // Save the partition where the next owner will find it, then forget it.
      async release(partition) {
        const entries = data.get(partition) ?? new Map();
        handedOver.set(partition, entries);
        data.delete(partition);
        await writeFile(file(partition), JSON.stringify([...entries]));
      },
      // Load what the previous owner saved (nothing for a fresh partition).
      async acquire(partition) {
        let entries: [string, string][] = [];
        try {
          entries = JSON.parse(await readFile(file(partition), "utf8"));
          await rm(file(partition));
        } catch {}
        data.set(partition, new Map(entries));
        handedOver.delete(partition);
      },
    },
    // Every member finished the version: the new owners have what was saved.
    onStable: () => handedOver.clear(),
    // Others take these partitions over from now on: nothing here can be trusted.
    onFenced: () => {
      data.clear();
      handedOver.clear();
    },
  });
  await cluster.start();
  await member.join();

  return {
    url,
    cluster,
    member,
    data,
    async close() {
      // Drains first: the partitions move to the others through release and
      // acquire, and the lease goes only once the new owners loaded them.
      await member.leave();
      await cluster.stop();
      server.close();
    },
    async kill() {
      server.closeAllConnections();
      server.close();
      await cluster.stop();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      name: { type: "string" },
      port: { type: "string", default: "0" },
      etcd: { type: "string", default: "http://127.0.0.1:2379" },
      store: { type: "string", default: "cache-store" },
    },
  });
  if (!values.name) throw new Error("--name is required");
  const service = await startCacheService({
    name: values.name,
    port: Number(values.port),
    etcd: values.etcd.split(","),
    store: values.store,
  });
  service.member.on("leader", (leading: boolean) => leading && process.stdout.write(`${values.name} leads\n`));
  service.member.on("stable", (version: number) =>
    process.stdout.write(`version ${version} stable; holding ${service.data.size} partitions\n`),
  );
  process.stdout.write(`${values.name} serving on ${service.url}\n`);
  process.once("SIGTERM", () => void service.close().then(() => process.exit(0)));
  process.once("SIGINT", () => void service.close().then(() => process.exit(0)));
}
