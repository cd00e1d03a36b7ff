/**
 * The ring page at scale, in Debian's Chromium: P = 65,536, n = 1,000 by
 * default. Prints the page's load (navigation to first full render), the
 * parts of a render (fetching /ring?table=compact, drawing the canvas), a
 * redraw alone, writing the owners list (in slices, after the canvas), and a
 * member joining (the server's ring change to the page showing the new
 * ring). Medians over --rounds.
 *
 *   npm run bench:page -- --partitions 65536 --members 1000 --rounds 5
 */
import { parseArgs } from "node:util";
import { fakeMember, openRingPage } from "../test/helpers/ring-page.ts";

const { values } = parseArgs({
  options: {
    partitions: { type: "string", default: "65536" },
    members: { type: "string", default: "1000" },
    rounds: { type: "string", default: "5" },
  },
});
const partitions = Number(values.partitions);
const n = Number(values.members);
const rounds = Number(values.rounds);
const names = Array.from({ length: n }, (_, i) => `member-${String(i).padStart(4, "0")}`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
interface Timings {
  fetchMs: number;
  drawMs: number;
  ownersListMs: number;
  totalMs: number;
  firstRenderMs: number;
}
const samples: Record<string, number[]> = { load: [], fetch: [], draw: [], ownersList: [], redraw: [], join: [] };

const ring = await openRingPage(names.map(fakeMember), { partitions });
try {
  for (let round = 0; round < rounds; round++) {
    await ring.page.reload();
    await ring.page.waitForFunction(
      (checksum) => document.body.dataset.checksum === checksum,
      ring.serving.cluster.ring.checksum,
    );
    const t = (await ring.page.evaluate("window.ringPage.timings")) as Timings;
    samples.load?.push(t.firstRenderMs);
    samples.fetch?.push(t.fetchMs);
    samples.draw?.push(t.drawMs);
    for (let i = 0; i < 3; i++) samples.redraw?.push((await ring.page.evaluate("window.ringPage.redraw()")) as number);
    // The owners as text are written when their section opens; closed again before the join.
    await ring.page.evaluate("document.querySelector('#owners-details').open = true");
    await ring.page.waitForSelector(`#owners[data-checksum="${ring.serving.cluster.ring.checksum}"]`, {
      state: "attached",
    });
    samples.ownersList?.push((await ring.page.evaluate("window.ringPage.timings.ownersListMs")) as number);
    await ring.page.evaluate("document.querySelector('#owners-details').open = false");
    await ring.page.waitForFunction("document.querySelectorAll('#owners li').length === 0");

    // A member joins: from the server's ring change to the page showing it.
    const members = [...names, `joiner-${round}`];
    const changed = new Promise<number>((resolve) => {
      const stop = ring.serving.cluster.listen({
        ring: () => {
          stop();
          resolve(Date.now());
        },
      });
    });
    await ring.setMembers(members.map(fakeMember));
    const at = await changed;
    try {
      await ring.page.waitForFunction(
        (checksum) => document.body.dataset.checksum === checksum,
        ring.serving.cluster.ring.checksum,
      );
      samples.join?.push(Date.now() - at);
    } catch (error) {
      // Reported, not fatal: the other figures of the round still count.
      process.stdout.write(`round ${round}: the page did not show the join: ${(error as Error).message}\n`);
    }
    await ring.setMembers(names.map(fakeMember));
    await ring.page.waitForFunction(
      (checksum) => document.body.dataset.checksum === checksum,
      ring.serving.cluster.ring.checksum,
    );
  }
} finally {
  await ring.close();
}
process.stdout.write(`ring page, P = ${partitions}, n = ${n}, median of ${rounds} rounds (ms)\n`);
for (const [name, xs] of Object.entries(samples)) {
  if (xs.length === 0) continue;
  process.stdout.write(
    `  ${name.padEnd(11)} ${median(xs).toFixed(0).padStart(6)}   (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})\n`,
  );
}
