/**
 * Regenerates docs/ring-page.png (`npm run screenshot`): the ring page with
 * the browser tests' setup, six live backends with some traffic, one member
 * joining, and the pointer over a partition.
 */
import { fileURLToPath } from "node:url";
import { send, startBackends } from "../test/helpers/backends.ts";
import { openRingPage } from "../test/helpers/ring-page.ts";

const out = fileURLToPath(new URL("../docs/ring-page.png", import.meta.url));
const backends = await startBackends(["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7"]);
const member = (b: { name: string; url: string }) => ({ name: b.name, url: b.url });
const ring = await openRingPage(backends.slice(0, 6).map(member), { partitions: 1024 }, { width: 1400, height: 1240 });
try {
  const proxy = `http://127.0.0.1:${ring.serving.proxy.port}`;
  const traffic = async (count: number) => {
    for (let i = 0; i < count; i++) await send(proxy, `/users/${i % 500}`);
  };
  await traffic(300);
  await ring.setMembers(backends.map(member));
  await ring.page.waitForFunction(
    (checksum) => document.body.dataset.checksum === checksum,
    ring.serving.cluster.ring.checksum,
  );
  await ring.page.waitForFunction("!window.ringPage.animating()");
  // Steady traffic across two polls of the counters, so the rates show.
  let running = true;
  const steady = (async () => {
    for (let i = 0; running; i++) await send(proxy, `/users/${i % 500}`);
  })();
  await ring.page.waitForTimeout(5_000);
  const totals = (await send(ring.admin, "/ring?table=false")).json.members.map(
    (m: { name: string; requests: number }) => `${m.name} ${m.requests}`,
  );
  process.stdout.write(`requests so far: ${totals.join(", ")}\n`);
  const box = await ring.page.locator("#ring").boundingBox();
  if (box) await ring.page.mouse.move(box.x + box.width * 0.37, box.y + box.height * 0.3);
  // The hover's example keys come from the server: wait for them so the picture shows them.
  await ring.page.waitForSelector("#tip .examples", { timeout: 30_000 });
  await ring.page.screenshot({ path: out });
  running = false;
  await steady;
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await ring.close();
  await Promise.all(backends.map((b) => b.kill()));
}
