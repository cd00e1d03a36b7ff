/**
 * The ring page's routing line, in Chromium, against `ringroute serve` on a
 * real etcd: with members registered by plain etcdctl under the default
 * coordinated hand-offs it says why no version comes.
 */
import test from "ava";
import { startServing } from "../src/commands/serve.ts";
import { defaultConfig } from "../src/config.ts";
import { defaultEtcdConfig } from "../src/membership/etcd/config.ts";
import { noLeaderReason } from "../src/membership/etcd/source.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { EtcdServer } from "./helpers/etcd.ts";

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
