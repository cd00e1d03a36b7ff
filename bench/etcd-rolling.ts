/**
 * A rolling restart users can see is harmless: examples/etcd-cache with
 * INSTANCES instances behind PROXIES `ringroute serve` proxies, steady reads
 * and writes over KEYS keys, every instance restarted once, one at a time,
 * leaving first (drain, hand over, revoke). Counts what clients saw:
 *
 * - writes lost: acknowledged (204) writes whose value is not read back at the end (must be 0)
 * - stale or missing reads: a 404 or an older value for a key with an acknowledged write (must be 0)
 * - requests that met a 421 or 503 (retried by the client until answered)
 * - the share of reads answered from an owner's memory (`x-cache-from: memory`), in the worst
 *   second; and with the old owner's saved copy during a hand-over (`saved`) counted too
 *
 * Each client worker owns its keys (no two requests for one key at once), so
 * every read has one right answer: the last acknowledged write.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { type CacheService, startCacheService } from "../examples/etcd-cache/service.ts";
import { type Serving, startServing } from "../src/commands/serve.ts";
import { defaultConfig } from "../src/config.ts";
import { parseEtcdConfig } from "../src/membership/etcd/config.ts";
import type { EtcdServer } from "../test/helpers/etcd.ts";
import { until } from "../test/helpers/until.ts";

export interface RollingOptions {
  instances: number;
  proxies: number;
  keys: number;
  /** Concurrent client workers (each owns keys i ≡ w mod workers). */
  workers: number;
  /** Share of operations that are writes. */
  writeShare: number;
  /** Milliseconds of steady traffic before the first restart and after each. */
  pause: number;
}

export interface RollingResult {
  writesAcked: number;
  writesLost: number;
  reads: number;
  staleReads: number;
  missingReads: number;
  met421: number;
  met503: number;
  otherErrors: number;
  worstSecondMemoryShare: number;
  /** Reads answered from the owner's memory or the old owner's saved copy, worst second. */
  worstSecondInMemoryShare: number;
  seconds: number;
  restartSeconds: number[];
}

export async function rollingRestart(etcd: EtcdServer, options: RollingOptions): Promise<RollingResult> {
  const cluster = `rolling${Date.now()}`;
  const store = await mkdtemp(join(tmpdir(), "ringroute-rolling-"));
  const names = Array.from({ length: options.instances }, (_, i) => `cache-${i + 1}`);
  const start = (name: string) =>
    startCacheService({ name, port: 0, etcd: [etcd.endpoint], store, cluster, ttl: 5000, leaveTimeout: 30_000 });
  const services = new Map<string, CacheService>();
  for (const name of names) services.set(name, await start(name));

  const servings: Serving[] = [];
  for (let i = 0; i < options.proxies; i++) {
    const config = defaultConfig();
    config.listen = { host: "127.0.0.1", port: 0 };
    config.admin = { host: "127.0.0.1", port: 0 };
    config.ring = { ...config.ring, partitions: 64, replicas: 1 };
    config.access.log = false;
    config.membership = { etcd: parseEtcdConfig({ endpoints: [etcd.endpoint], cluster }, "etcd") };
    servings.push(await startServing(config, { accessLog: () => undefined }));
  }
  const proxies = servings.map((s) => `http://127.0.0.1:${s.proxy.port}`);
  const stableWith = (n: number) =>
    servings.every(
      (s) =>
        s.cluster.version !== undefined &&
        s.cluster.stableVersion === s.cluster.version &&
        s.cluster.ring.size === n &&
        s.cluster.coordination?.partitionsInHandoff === 0,
    );
  await until(() => stableWith(names.length), { what: "every proxy stable on all instances", timeout: 120_000 });

  const agent = new Agent({ connections: 16 });
  const acked = new Map<string, string>();
  const counts = { writesAcked: 0, reads: 0, staleReads: 0, missingReads: 0, met421: 0, met503: 0, otherErrors: 0 };
  /** Per second since the start of the restarts: [reads from the owner's memory, from a saved copy, all reads]. */
  const perSecond = new Map<number, [number, number, number]>();
  let measuring = false;
  let t0 = 0;
  const keyOf = (i: number) => `/user-${i}`;

  /** One request, retried on 421/503/connection errors until answered, for at most 30 s. */
  const call = async (method: "GET" | "PUT", key: string, body?: string) => {
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      const proxy = proxies[Math.floor(Math.random() * proxies.length)] as string;
      try {
        const res = await request(`${proxy}${key}`, { method, body, dispatcher: agent });
        const text = await res.body.text();
        if (res.statusCode === 421 || res.statusCode === 503) {
          if (measuring) res.statusCode === 421 ? counts.met421++ : counts.met503++;
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        return { status: res.statusCode, text, from: res.headers["x-cache-from"] };
      } catch {
        if (measuring) counts.otherErrors++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    throw new Error(`${method} ${key}: no answer within 30 s`);
  };

  // Fill every key once.
  await Promise.all(
    Array.from({ length: options.workers }, async (_, w) => {
      for (let i = w; i < options.keys; i += options.workers) {
        const value = `v0-${i}`;
        const reply = await call("PUT", keyOf(i), value);
        if (reply.status !== 204) throw new Error(`fill ${i}: ${reply.status}`);
        acked.set(keyOf(i), value);
      }
    }),
  );

  let running = true;
  let seq = 0;
  const traffic = Promise.all(
    Array.from({ length: options.workers }, async (_, w) => {
      const mine = Math.ceil((options.keys - w) / options.workers);
      while (running) {
        const i = w + options.workers * Math.floor(Math.random() * mine);
        const key = keyOf(i);
        if (Math.random() < options.writeShare) {
          const value = `v${++seq}-${i}`;
          const reply = await call("PUT", key, value);
          if (reply.status === 204) {
            acked.set(key, value);
            if (measuring) counts.writesAcked++;
          } else if (measuring) counts.otherErrors++;
        } else {
          const expected = acked.get(key);
          const reply = await call("GET", key);
          if (!measuring) continue;
          counts.reads++;
          const second = Math.floor((performance.now() - t0) / 1000);
          const cell = perSecond.get(second) ?? [0, 0, 0];
          cell[2]++;
          if (reply.status === 404) counts.missingReads++;
          else if (reply.status !== 200) counts.otherErrors++;
          else if (reply.text !== expected) counts.staleReads++;
          else if (reply.from === "memory") cell[0]++;
          else if (reply.from === "saved") cell[1]++;
          perSecond.set(second, cell);
        }
      }
    }),
  );

  measuring = true;
  t0 = performance.now();
  const restartSeconds: number[] = [];
  const pause = () => new Promise((resolve) => setTimeout(resolve, options.pause));
  await pause();
  for (const name of names) {
    const began = performance.now();
    await (services.get(name) as CacheService).close(); // drain, hand over, revoke
    await until(() => stableWith(names.length - 1), { what: `stable without ${name}`, timeout: 120_000 });
    services.set(name, await start(name));
    await until(() => stableWith(names.length), { what: `stable with ${name} back`, timeout: 120_000 });
    restartSeconds.push((performance.now() - began) / 1000);
    await pause();
  }
  const seconds = (performance.now() - t0) / 1000;
  measuring = false;
  running = false;
  await traffic;

  let writesLost = 0;
  for (const [key, value] of acked) {
    const reply = await call("GET", key);
    if (reply.status !== 200 || reply.text !== value) writesLost++;
  }
  let worst = 1;
  let worstInMemory = 1;
  for (const [, [memory, saved, all]] of perSecond) {
    if (all < 10) continue;
    worst = Math.min(worst, memory / all);
    worstInMemory = Math.min(worstInMemory, (memory + saved) / all);
  }

  await agent.close();
  for (const s of servings) await s.close();
  for (const s of services.values()) {
    await s.member.leave().catch(() => {});
    await s.kill();
  }
  await rm(store, { recursive: true, force: true });
  return {
    ...counts,
    writesLost,
    worstSecondMemoryShare: worst,
    worstSecondInMemoryShare: worstInMemory,
    seconds,
    restartSeconds,
  };
}
