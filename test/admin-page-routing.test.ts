/**
 * The ring page's routing line, in Chromium, against `ringroute serve` on a
 * real etcd: with members registered by plain etcdctl under the default
 * coordinated hand-offs it says why no version comes. And, on a source that
 * coordinates hand-offs step by step as the test says, the map, highlight
 * and change log follow what is routed rather than the target ring.
 */
import test from "ava";
import { Metrics } from "../src/admin/metrics.ts";
import { createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { startServing } from "../src/commands/serve.ts";
import { defaultConfig } from "../src/config.ts";
import { defaultEtcdConfig } from "../src/membership/etcd/config.ts";
import { noLeaderReason } from "../src/membership/etcd/source.ts";
import { Ring } from "../src/ring/ring.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { CoordinatedSource, handoffStep } from "./helpers/coordinated-source.ts";
import { EtcdServer } from "./helpers/etcd.ts";
import { fakeMember, readCanvas } from "./helpers/ring-page.ts";

test("the ring page says why there is no leader when members registered without the protocol", async (t) => {
  t.timeout(300_000);
  const etcd = await EtcdServer.start();
  t.teardown(() => etcd.stop());
  const lease = await etcd.grant(60);
  await etcd.ctl(
    "put",
    "--lease",
    lease,
    "/ringroute/plain/members/web-1",
    JSON.stringify({ url: "http://127.0.0.1:9" }),
  );
  const config = defaultConfig();
  config.listen = { host: "127.0.0.1", port: 0 };
  config.admin = { host: "127.0.0.1", port: 0 };
  config.membership = { etcd: { ...defaultEtcdConfig("plain"), endpoints: [etcd.endpoint] } };
  const serving = await startServing(config);
  t.teardown(() => serving.close());
  const browser = await launchBrowser();
  t.teardown(() => browser.close());
  const page = await browser.context.newPage();
  page.setDefaultTimeout(120_000);
  await page.goto(`http://127.0.0.1:${serving.admin.port}/`);
  await page.waitForFunction(
    (reason) => document.querySelector("#routing")?.textContent?.includes(reason),
    noLeaderReason,
    { timeout: 60_000 },
  );
  const text = await page.textContent("#routing");
  t.true(text?.includes(noLeaderReason), text ?? "");
  t.true(await page.$eval("#routing", (el) => el.classList.contains("down")));
});

test("under coordinated hand-offs the map follows what is routed: none-ready slots hatched, each step's moves highlighted and logged", async (t) => {
  t.timeout(300_000);
  const config = { partitions: 512, replicas: 2 };
  const before = ["node-0", "node-1", "node-2", "node-3", "node-4"];
  const source = new CoordinatedSource(before.map(fakeMember));
  const old = Ring.build(before, config);
  source.table = handoffStep(old, old, "ready", 1);
  const cluster = new Cluster({ source, ring: config });
  await cluster.start();
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  t.teardown(async () => {
    await admin.close();
    metrics.close();
    await cluster.stop();
  });
  const browser = await launchBrowser();
  t.teardown(() => browser.close());
  const page = await browser.context.newPage();
  page.setDefaultTimeout(120_000);
  // A long highlight, so the checks cannot race its end on a busy machine.
  await page.goto(`http://127.0.0.1:${port}/?highlight=600000`);
  const showing = (checksum: string) =>
    page.waitForFunction((c) => document.body.dataset.checksum === c, checksum, { timeout: 60_000 });
  await showing(old.checksum);
  const tables: string[] = [];
  page.on("request", (request) => {
    if (request.url().includes("table=compact")) tables.push(request.url());
  });

  // node-new joins: the target ring changes, what is routed does not yet.
  source.set([...before, "node-new"].map(fakeMember));
  const target = cluster.ring;
  const moved = [...Array(512).keys()].filter((p) => old.owner(p, 0) !== target.owner(p, 0));
  t.true(moved.length > 0);
  const known = async () =>
    new Set(
      Object.values(
        await page.$$eval("#members tbody tr", (rows) =>
          rows.map((row) => (row as HTMLElement).dataset.color).filter((c) => c !== "transparent"),
        ),
      ),
    );
  const firstLine = async (kind: string) => {
    await page.waitForFunction((k) => document.querySelector("#log li")?.getAttribute("data-kind") === k, kind);
    return (await page.textContent("#log li")) ?? "";
  };
  t.regex(await firstLine("ring"), new RegExp(`target ring \\+node-new: ${moved.length} partitions to move`));

  // Step 1: the moving slots stay at their old owners: nothing moved, nothing highlighted.
  const moving = handoffStep(old, target, "moving", 2);
  source.route(moving);
  await showing(moving.checksum);
  t.deepEqual(await page.evaluate("window.ringPage.highlighted()"), []);
  t.deepEqual(await page.evaluate(`window.ringPage.slot(${moved[0]})`), {
    member: old.owner(moved[0] as number, 0),
    state: "moving",
  });
  t.regex(await firstLine("routing"), /routing v2: 0 partitions moved/);

  // Step 2: the old owners let go; none holds them ready. They are highlighted, drawn as waiting, and logged.
  const none = handoffStep(old, target, "none", 3);
  source.route(none);
  await showing(none.checksum);
  t.deepEqual(await page.evaluate("window.ringPage.highlighted()"), moved);
  const colours = await known();
  let cells = (await readCanvas(page)).slice(0, 512);
  const waiting = cells[moved[0] as number] as string;
  t.false(colours.has(waiting), "a none-ready cell is in no member's colour");
  t.deepEqual(
    cells.flatMap((c, p) => (c === waiting ? [p] : [])),
    moved,
    "the moved cells, and only they, are drawn as waiting",
  );
  let line = await firstLine("routing");
  t.true(line.includes(`routing v3: ${moved.length} partitions moved`), line);
  t.true(line.includes(`to none ready (${moved.length})`), line);
  t.regex(line, /from node-\d \(\d+\)/);

  // Step 3: node-new holds them ready.
  const ready = handoffStep(old, target, "ready", 4);
  source.route(ready);
  await showing(ready.checksum);
  t.deepEqual(await page.evaluate("window.ringPage.highlighted()"), moved);
  const newColour = await page.$eval(
    '#members tr[data-member="node-new"]',
    (row) => (row as HTMLElement).dataset.color,
  );
  cells = (await readCanvas(page)).slice(0, 512);
  t.deepEqual(
    cells.flatMap((c, p) => (c === newColour ? [p] : [])),
    moved,
  );
  line = await firstLine("routing");
  t.true(line.includes(`from none ready (${moved.length})`), line);
  t.true(line.includes(`to node-new (${moved.length})`), line);
  t.deepEqual(tables, [], "every step came as cells over /events: the table was not read again");

  // The log survives a reload: the routing steps come from /changes.
  await page.reload();
  await showing(ready.checksum);
  await page.waitForSelector("#log[data-loaded]", { state: "attached" });
  const kinds = await page.$$eval("#log li", (items) => items.map((li) => (li as HTMLElement).dataset.kind));
  t.deepEqual(kinds, ["routing", "routing", "routing", "ring"]);
});
