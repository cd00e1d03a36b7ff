import test, { type ExecutionContext } from "ava";
import { movement } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { send } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";
import { background, fakeMember, openRingPage, type RingPage, readCanvas } from "./helpers/ring-page.ts";
import { within } from "./helpers/until.ts";

// Each test starts its own Chromium, one at a time; on a busy shared machine that is slow,
// so each gets a generous timeout (never a speed assertion).
const serial = (title: string, body: (t: ExecutionContext) => Promise<void>) =>
  test.serial(title, async (t) => {
    t.timeout(300_000);
    await body(t);
  });

const names = (n: number, prefix = "node") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** The members table's colour for each member in the ring, as the page shows it. */
function colours(page: RingPage["page"]) {
  return page.$$eval("#members tbody tr", (rows) =>
    Object.fromEntries(
      rows
        .filter((row) => (row as HTMLElement).dataset.color !== "transparent")
        .map((row) => [(row as HTMLElement).dataset.member, (row as HTMLElement).dataset.color]),
    ),
  ) as Promise<Record<string, string>>;
}

/** How many cells each colour covers, from the canvas. */
function countByColour(cells: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const cell of cells) counts.set(cell, (counts.get(cell) ?? 0) + 1);
  return counts;
}

async function checkCanvasMatchesRing(t: ExecutionContext, page: RingPage) {
  const ring = (await send(page.admin, "/ring")).json;
  const P = ring.config.partitions;
  const cells = await readCanvas(page.page);
  t.true(
    cells.slice(0, P).every((c) => c !== background),
    "every partition is drawn",
  );
  t.true(
    cells.slice(P).every((c) => c === background),
    "no cell beyond the last partition",
  );
  // Each member's colour covers as many cells as /ring says it holds as primary.
  const colour = await colours(page.page);
  const expected = new Map<string, number>();
  for (const member of ring.members) {
    if (!member.inRing) continue;
    if (member.partitions[0] === 0) continue;
    const c = colour[member.name] as string;
    t.truthy(c, `${member.name} has a colour`);
    expected.set(c, (expected.get(c) ?? 0) + (member.partitions[0] as number));
  }
  t.deepEqual(Object.fromEntries(countByColour(cells.slice(0, P))), Object.fromEntries(expected));
  // And the owners as text match /ring's table, in replica order (written once their section is open).
  await page.page.evaluate("document.querySelector('#owners-details').open = true");
  await page.page.waitForSelector(`#owners[data-checksum="${ring.checksum}"]`, { state: "attached" });
  const owners = await page.page.$$eval("#owners li", (items) =>
    items.map((li) => JSON.parse((li as HTMLElement).dataset.owners as string)),
  );
  t.is(owners.length, P);
  t.deepEqual(owners, ring.table);
}

serial(
  "the page draws one cell per partition, each in its primary owner's colour, and lists every partition's owners",
  async (t) => {
    // node-4 is a gRPC member, spoken to over h2c; the others say nothing and are HTTP/1.1.
    const members = names(5).map((n) =>
      n === "node-4" ? { ...fakeMember(n), protocol: "h2c" as const } : fakeMember(n),
    );
    const page = await openRingPage(members, { partitions: 1000, replicas: 3 });
    t.teardown(() => page.close());
    await checkCanvasMatchesRing(t, page);
    const rows = await page.page.$$eval("#members tbody tr", (trs) =>
      trs.map((tr) => [
        (tr as HTMLElement).dataset.member,
        (tr as HTMLElement).dataset.status,
        tr.querySelector(".protocol")?.textContent,
      ]),
    );
    t.deepEqual(rows, [
      ["node-0", "up", "h1"],
      ["node-1", "up", "h1"],
      ["node-2", "up", "h1"],
      ["node-3", "up", "h1"],
      ["node-4", "up", "h2c"],
    ]);
    t.is(await page.page.textContent("#config-checksum"), page.serving.cluster.ring.checksum);
    t.is(await page.page.textContent("#config-partitions"), "1000");
    // The header shows the knobs of the default placement, balanced, and none that it ignores.
    t.is(await page.page.textContent("#config-placement"), "balanced");
    t.is(await page.page.textContent("#config-balanceFactor"), "1.25");
    for (const ignored of ["order", "vnodes", "compat"]) t.is(await page.page.$(`#config-${ignored}`), null, ignored);
    // Hovering the first cell names partition 0, its owners in replica order, and keys that land there.
    await page.page.hover("#ring", { position: { x: 1, y: 1 } });
    await page.page.waitForSelector("#tip .examples", { timeout: 60_000 });
    const tip = (await page.page.textContent("#tip")) ?? "";
    const ring = page.serving.cluster.ring;
    t.regex(tip, /^partition 0primary: /);
    t.true(tip.includes(`primary:  ${ring.ownersOfPartition(0)[0]}`), tip);
    const keys = tip.replace(/^.*keys here: /, "").split(", ");
    t.is(keys.length, 3);
    for (const key of keys) t.is(ring.partitionOf(key), 0, `${key} lands in partition 0`);
  },
);

for (const [partitions, n, placement] of [
  [1, 2, "jump"],
  [65536, 7, "balanced"],
] as const) {
  serial(`P = ${partitions} draws exactly its partitions (${placement})`, async (t) => {
    const page = await openRingPage(names(n).map(fakeMember), { partitions, placement });
    t.teardown(() => page.close());
    await checkCanvasMatchesRing(t, page);
    if (placement === "jump") {
      // jump indexes the sorted members: order matters, a balance factor does not.
      t.is(await page.page.textContent("#config-order"), "lexical");
      t.is(await page.page.$("#config-balanceFactor"), null);
    }
  });
}

/** The page's checksum once it shows `ring`'s. */
const showing = (page: RingPage, checksum: string) =>
  page.page.waitForFunction((c) => document.body.dataset.checksum === c, checksum, { timeout: 30_000 });

/** Rewrites the members file and waits for the page to show the ring the server built from it. */
async function change(page: RingPage, members: string[]) {
  const changed = new Promise<void>((resolve) => {
    const stop = page.serving.cluster.listen({
      ring: () => {
        stop();
        resolve();
      },
    });
  });
  await page.setMembers(members.map(fakeMember));
  await within(changed, { what: "the server to apply the new members file" });
  await showing(page, page.serving.cluster.ring.checksum);
}

serial("a member's colour is a function of its name: the same after a reload and as members come and go", async (t) => {
  const members = names(25);
  const page = await openRingPage(members.map(fakeMember), { partitions: 4096 });
  t.teardown(() => page.close());
  const first = await colours(page.page);
  t.is(Object.keys(first).length, 25);
  t.true(new Set(Object.values(first)).size >= 20, "names spread over the colours");
  await page.page.reload();
  await showing(page, page.serving.cluster.ring.checksum);
  t.deepEqual(await colours(page.page), first, "a reload keeps every colour");
  // A newcomer that sorts first and a member gone shift every ring index; no survivor changes colour.
  const next = ["a-first", ...members.filter((m) => m !== "node-3")];
  await change(page, next);
  const after = await colours(page.page);
  for (const name of next.slice(1)) t.is(after[name], first[name], name);
  await page.page.waitForFunction("!window.ringPage.animating()");
  await checkCanvasMatchesRing(t, page);
});

serial(
  "with 24 members, selecting one in the table or on the map highlights its partitions and dims the rest",
  async (t) => {
    const page = await openRingPage(names(24).map(fakeMember), { partitions: 2048 });
    t.teardown(() => page.close());
    const colour = await colours(page.page);
    const ring = page.serving.cluster.ring;
    const bright = async () => {
      const cells = (await readCanvas(page.page)).slice(0, 2048);
      return Object.fromEntries(
        Object.entries(colour).map(([name, c]) => [name, cells.filter((cell) => cell === c).length]),
      );
    };
    const only = (name: string) =>
      Object.fromEntries(Object.keys(colour).map((m) => [m, m === name ? (ring.loads.get(name)?.[0] as number) : 0]));

    await page.page.click('#members tbody tr[data-member="node-5"]');
    t.is(await page.page.evaluate("document.body.dataset.selected"), "node-5");
    t.deepEqual(await bright(), only("node-5"), "only node-5's primaries keep their colour");
    // Clicking a cell selects its primary owner instead.
    await page.page.click("#ring", { position: { x: 1, y: 1 } });
    const owner = ring.ownersOfPartition(0)[0] as string;
    t.is(await page.page.evaluate("window.ringPage.selected()"), owner);
    t.deepEqual(await bright(), only(owner));
    // Escape clears it: every cell in its owner's colour again.
    await page.page.keyboard.press("Escape");
    t.is(await page.page.evaluate("window.ringPage.selected()"), null);
    await checkCanvasMatchesRing(t, page);
  },
);

serial(
  "a change keeps exactly the moved partitions bright for a while, and the log says from and to whom",
  async (t) => {
    const before = names(6);
    const page = await openRingPage(before.map(fakeMember), { partitions: 2048 });
    t.teardown(() => page.close());
    // A long highlight, so the check cannot race its end on a busy machine.
    await page.page.goto(`${page.admin}/?highlight=600000`);
    await showing(page, page.serving.cluster.ring.checksum);
    const previous = page.serving.cluster.ring;
    const tables: string[] = [];
    page.page.on("request", (request) => {
      if (request.url().includes("table=compact")) tables.push(request.url());
    });
    await change(page, [...before, "node-new"]);
    t.deepEqual(tables, [], "the change came as moved cells over /events: the table was not read again");
    const next = page.serving.cluster.ring;
    const moved: number[] = [];
    for (let p = 0; p < 2048; p++) if (previous.owner(p, 0) !== next.owner(p, 0)) moved.push(p);
    t.true(moved.length > 0);
    t.deepEqual(await page.page.evaluate("window.ringPage.highlighted()"), moved);
    // On the map, the moved cells are in node-new's colour and nothing else is in any member's.
    const colour = await colours(page.page);
    const cells = (await readCanvas(page.page)).slice(0, 2048);
    const known = new Set(Object.values(colour));
    t.deepEqual(
      cells.flatMap((c, p) => (known.has(c) ? [p] : [])),
      moved,
    );
    t.true(moved.every((p) => cells[p] === colour["node-new"]));
    const line = (await page.page.textContent("#log li")) ?? "";
    t.regex(line, new RegExp(`\\+node-new: ${moved.length} partitions moved`));
    t.true(line.includes(`to node-new (${moved.length})`), line);
    t.regex(line, /from node-\d \(\d+\)/);
  },
);

serial("the change log shows the server's last changes after a page load, newest first", async (t) => {
  const members = names(4);
  const page = await openRingPage(members.map(fakeMember), { partitions: 512 });
  t.teardown(() => page.close());
  await change(page, [...members, "node-x"]);
  await change(page, [...members, "node-x", "node-y"]);
  await change(page, [...members, "node-y"]);
  await page.page.reload();
  await showing(page, page.serving.cluster.ring.checksum);
  await page.page.waitForSelector("#log[data-loaded]", { state: "attached" });
  const server = (await send(page.admin, "/changes")).json.changes as { seq: number; checksum: string }[];
  const shown = await page.page.$$eval("#log li", (items) =>
    items.map((li) => ({ seq: Number((li as HTMLElement).dataset.seq), text: li.textContent ?? "" })),
  );
  t.deepEqual(
    shown.map((s) => s.seq),
    server.map((c) => c.seq).reverse(),
  );
  t.true(server.length >= 4, "the first members and three changes");
  t.regex(shown[0]?.text ?? "", /−node-x: \d+ partitions moved/);
  t.regex(shown[1]?.text ?? "", /\+node-y/);
});

serial(
  "a member added through the membership source shows on the page, moved cells and a change log line",
  async (t) => {
    const before = names(4);
    const page = await openRingPage(before.map(fakeMember), { partitions: 2048 });
    t.teardown(() => page.close());
    const after = [...before, "node-new"];
    const changed = new Promise<number>((resolve) => {
      const stop = page.serving.cluster.listen({
        ring: () => {
          stop();
          resolve(Date.now());
        },
      });
    });
    await page.setMembers(after.map(fakeMember));
    await within(changed, { what: "the server to apply the new members file" });
    const expected = Ring.build(after, { partitions: 2048 });
    // The target is 2 s; the deadline is generous because the machine may be busy (the latency is logged).
    await page.page.waitForFunction((checksum) => document.body.dataset.checksum === checksum, expected.checksum, {
      timeout: 30_000,
    });
    t.log(`page updated ${Date.now() - (await changed)} ms after the ring changed`);
    const moved = movement(Ring.build(before, { partitions: 2048 }), expected).primaries;
    const line = await page.page.$eval("#log li", (li) => ({
      text: li.textContent,
      moved: (li as HTMLElement).dataset.moved,
    }));
    t.regex(line.text ?? "", /\+node-new/);
    t.is(line.moved, String(moved));
    // Wait out the fade of the moved cells, then the canvas must match the new ring exactly.
    await page.page.waitForFunction("!window.ringPage.animating()");
    await checkCanvasMatchesRing(t, page);
  },
);

serial("the what-if form shows the numbers `ringroute plan --json` prints for the same change", async (t) => {
  const members = names(6);
  const ring = { partitions: 4096, replicas: 2, placement: "balanced" as const };
  const page = await openRingPage(members.map(fakeMember), ring);
  t.teardown(() => page.close());
  await page.page.fill('#whatif input[name="add"]', "node-x, node-y");
  await page.page.fill('#whatif input[name="remove"]', "node-2");
  await page.page.click('#whatif button[type="submit"]');
  await page.page.waitForSelector("#plan-moved");
  const shown = {
    moved: Number(await page.page.textContent("#plan-moved")),
    optimal: Number(await page.page.textContent("#plan-optimal")),
    slots: Number(await page.page.textContent("#plan-slots")),
    plan: JSON.parse((await page.page.getAttribute("#plan", "data-plan")) as string),
  };
  const cli = await ringroute([
    "plan",
    "--members",
    members.join(","),
    "--partitions",
    "4096",
    "--replicas",
    "2",
    "--placement",
    "balanced",
    "--add",
    "node-x,node-y",
    "--remove",
    "node-2",
    "--json",
  ]);
  t.is(cli.code, 0, cli.stderr);
  const expected = JSON.parse(cli.stdout);
  t.deepEqual(
    [shown.moved, shown.optimal, shown.slots],
    [expected.moved_primaries, expected.optimal_primaries, expected.moved_replica_slots],
  );
  const { checksum, afterChecksum, ...plan } = shown.plan;
  t.deepEqual(plan, expected);
  // The cells that would move stay coloured; the rest are dimmed.
  const cells = await readCanvas(page.page);
  const colour = await colours(page.page);
  const known = new Set(Object.values(colour));
  const bright = cells.slice(0, 4096).filter((c) => known.has(c)).length;
  t.is(bright, expected.moved_primaries);
  // A bad change is refused in words, not numbers.
  await page.page.fill('#whatif input[name="add"]', "node-1");
  await page.page.fill('#whatif input[name="remove"]', "");
  await page.page.click('#whatif button[type="submit"]');
  await page.page.waitForSelector("#plan .error");
  t.regex((await page.page.textContent("#plan .error")) ?? "", /already a member/);
});
