import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CacheService, cacheRing, startCacheService } from "../examples/etcd-cache/service.ts";
import { loadConfig } from "../src/commands/flags.ts";
import { startServing } from "../src/commands/serve.ts";
import { Ring } from "../src/ring/ring.ts";
import { send } from "./helpers/backends.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { inEachShape } from "./helpers/shapes.ts";
import { until } from "./helpers/until.ts";

inEachShape(
  "the etcd cache example hands its partitions over on scale-out and scale-in without losing an entry",
  async (t, shape) => {
    const etcd = await EtcdServer.start();
    const store = await mkdtemp(join(tmpdir(), "ringroute-cache-"));
    const services: CacheService[] = [];
    t.teardown(async () => {
      for (const s of services) await s.member.leave().catch(() => {});
      for (const s of services) await s.kill();
      await etcd.stop();
      await rm(store, { recursive: true, force: true });
    });
    const start = async (name: string) => {
      const service = await startCacheService({ name, port: 0, etcd: [etcd.endpoint], store, ttl: 10_000 });
      services.push(service);
      return service;
    };

    const config = loadConfig(["--config", join(import.meta.dirname, "../examples/etcd-cache/ringroute.yaml")], {
      env: {},
    });
    config.listen = { host: "127.0.0.1", port: 0 };
    config.admin = { host: "127.0.0.1", port: 0 };
    config.workers = shape.workers;
    config.access = { log: false, sample: 1 };
    config.membership = {
      etcd: {
        ...(config.membership?.etcd as NonNullable<typeof config.membership>["etcd"] & object),
        endpoints: [etcd.endpoint],
      },
    };
    const serving = await startServing(config);
    t.teardown(() => serving.close());
    const proxy = `http://127.0.0.1:${serving.proxy.port}`;

    const one = await start("cache-1");
    await until(
      () =>
        serving.cluster.routing.has("cache-1") &&
        serving.cluster.stableVersion === serving.cluster.version &&
        serving.workers().every((w) => w.inSync),
      {
        what: "the proxy routing to cache-1",
      },
    );
    const keys = Array.from({ length: 40 }, (_, i) => `/user-${i}`);
    for (const key of keys) t.is((await send(proxy, key, { method: "PUT", body: `v${key}` })).status, 204);

    // Scale out: cache-2 takes about half the partitions, loading what cache-1 saved.
    const two = await start("cache-2");
    const readAll = async () => {
      for (const key of keys) {
        const reply = await send(proxy, key);
        t.is(reply.status, 200, `${key} while scaling`);
        t.is(reply.text, `v${key}`);
      }
    };
    await until(
      async () => {
        await readAll(); // every read during the hand-off finds its entry
        return serving.cluster.stableVersion === serving.cluster.version && serving.cluster.ring.size === 2;
      },
      { what: "a stable ring of two" },
    );
    await readAll();
    const ring = Ring.build(["cache-1", "cache-2"], cacheRing);
    const onTwo = keys.filter((k) => ring.ownerOf(k) === "cache-2");
    t.true(onTwo.length > 0);
    t.is(
      [...two.data.values()].reduce((n, m) => n + m.size, 0),
      onTwo.length,
      "cache-2 holds exactly its keys",
    );

    // Scale in: cache-1 drains, saving everything for cache-2.
    await one.close();
    await until(() => serving.cluster.ring.members.join() === "cache-2" && serving.cluster.consistent, {
      what: "cache-2 alone",
    });
    await readAll();
    t.is(
      [...two.data.values()].reduce((n, m) => n + m.size, 0),
      keys.length,
    );
  },
);
