import { type IncomingMessage, request } from "node:http";
import { connect } from "node:net";
import test from "ava";
import fc from "fast-check";
import type { MoveCounts } from "../src/admin/events.ts";
import { Metrics } from "../src/admin/metrics.ts";
import { movedCells, routedCells, routedMoves } from "../src/admin/ring-view.ts";
import { type AdminOptions, createAdminServer } from "../src/admin/server.ts";
import { Cluster } from "../src/cluster.ts";
import { RoutingTable, type SlotState, slotStates } from "../src/handoff/table.ts";
import { diff, movement } from "../src/ring/diff.ts";
import { Ring } from "../src/ring/ring.ts";
import { send, TestSource } from "./helpers/backends.ts";
import { ManualClock } from "./helpers/clock.ts";
import { CoordinatedSource, handoffStep } from "./helpers/coordinated-source.ts";
import { until } from "./helpers/until.ts";

const member = (name: string) => ({ name, url: `http://127.0.0.1:1/${name}` });
const members = (...names: string[]) => names.map(member);

/** A cluster on a hand-driven source, with its admin server on an ephemeral port. */
async function startAdmin(names: string[], options: Partial<AdminOptions> & { partitions?: number } = {}) {
  const source = new TestSource(members(...names));
  const cluster = new Cluster({ source, ring: { partitions: options.partitions ?? 64 } });
  await cluster.start();
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics, ...options });
  const { port } = await admin.listen(0, "127.0.0.1");
  return {
    source,
    cluster,
    admin,
    base: `http://127.0.0.1:${port}`,
    port,
    async close() {
      await admin.close();
      metrics.close();
      await cluster.stop();
    },
  };
}

interface Frame {
  id?: string;
  event?: string;
  data?: unknown;
  comment?: string;
}

/** An SSE client that parses frames as they come. */
function subscribe(port: number, path: string, headers: Record<string, string> = {}) {
  const frames: Frame[] = [];
  let response: IncomingMessage | undefined;
  let buffer = "";
  let ended = false;
  const req = request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
    response = res;
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buffer += chunk;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const frame: Frame = {};
        for (const line of buffer.slice(0, end).split("\n")) {
          if (line.startsWith(":")) frame.comment = line.slice(1).trim();
          else if (line.startsWith("id: ")) frame.id = line.slice(4);
          else if (line.startsWith("event: ")) frame.event = line.slice(7);
          else if (line.startsWith("data: ")) frame.data = JSON.parse(line.slice(6));
        }
        frames.push(frame);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
      }
    });
    res.on("end", () => (ended = true));
    res.on("close", () => (ended = true));
  });
  req.on("error", () => (ended = true));
  req.end();
  return {
    frames,
    events: () => frames.filter((f) => f.event !== undefined),
    get ended() {
      return ended;
    },
    get status() {
      return response?.statusCode;
    },
    connected: () => until(() => frames.some((f) => f.comment === "connected"), { what: "the stream to open" }),
    close: () => req.destroy(),
  };
}

test("/events by default sends memberUp and one ring summary per change, with moved counts and × optimum", async (t) => {
  const all = await startAdmin(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events");
  t.teardown(() => stream.close());
  await stream.connected();
  all.source.set(members("alpha", "bravo", "charlie"));
  await until(() => stream.events().some((f) => f.event === "ring"), { what: "the ring event" });
  const before = Ring.build(["alpha", "bravo"], { partitions: 64 });
  const after = Ring.build(["alpha", "bravo", "charlie"], { partitions: 64 });
  const moved = movement(before, after);
  t.deepEqual(
    stream.events().map((f) => f.event),
    ["memberUp", "ring"],
    "no per-partition events unless asked",
  );
  t.deepEqual(stream.events()[0]?.data, { ...member("charlie"), protocol: "h1", state: "alive", tags: {} });
  const optimal = Math.ceil(64 / 3);
  t.like(stream.events()[1]?.data, {
    checksum: after.checksum,
    previousChecksum: before.checksum,
    added: ["charlie"],
    removed: [],
    size: 3,
    moved: { primaries: moved.primaries, replicaSlots: moved.replicaSlots },
    optimalPrimaries: optimal,
    timesOptimum: Math.round((100 * moved.primaries) / optimal) / 100,
  });
  for (const frame of stream.events()) t.regex(frame.id ?? "", /^[0-9a-z]+\.\d+$/, "every event has an id");
});

test("/events?types=acquire,release streams exactly the ring diff, and nothing else", async (t) => {
  const all = await startAdmin(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events?types=acquire,release");
  t.teardown(() => stream.close());
  await stream.connected();
  all.source.set(members("alpha", "bravo", "charlie"));
  const expected = diff(
    Ring.build(["alpha", "bravo"], { partitions: 64 }),
    Ring.build(["alpha", "bravo", "charlie"], { partitions: 64 }),
  );
  await until(() => stream.events().length >= expected.length, { what: `${expected.length} partition events` });
  // The cluster reports every release of a change before its acquires.
  const inOrder = [...expected.filter((e) => e.type === "release"), ...expected.filter((e) => e.type === "acquire")];
  t.deepEqual(
    stream.events().map((f) => JSON.stringify(f.data)),
    inOrder.map((e) => JSON.stringify(e)),
  );
  t.true(
    stream.events().every((f) => f.event === (f.data as { type: string }).type),
    "each frame is named by its type",
  );
});

test("/events rejects an unknown type with a JSON 400", async (t) => {
  const all = await startAdmin(["alpha"]);
  t.teardown(() => all.close());
  const reply = await send(all.base, "/events?types=ring,nope");
  t.is(reply.status, 400);
  t.like(reply.json, { error: "bad_request", field: "types" });
  t.regex(reply.json.message, /"nope"/);
});

test("a client that reconnects with Last-Event-ID gets the events it missed, in order", async (t) => {
  const all = await startAdmin(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const first = subscribe(all.port, "/events");
  await first.connected();
  all.source.set(members("alpha", "bravo", "charlie"));
  await until(() => first.events().some((f) => f.event === "ring"), { what: "the first change" });
  const lastId = first.events().at(-1)?.id as string;
  first.close();
  all.source.set(members("alpha", "charlie"));
  all.source.set(members("alpha", "charlie", "delta"));

  const resumed = subscribe(all.port, "/events", { "last-event-id": lastId });
  t.teardown(() => resumed.close());
  await until(() => resumed.events().filter((f) => f.event === "ring").length === 2, { what: "two missed changes" });
  t.deepEqual(
    resumed.events().map((f) => f.event),
    ["memberDown", "ring", "memberUp", "ring"],
  );
  const ids = resumed.events().map((f) => Number(f.id?.split(".")[1]));
  t.true(ids.every((id, i) => id > Number(lastId.split(".")[1]) && (i === 0 || id > (ids[i - 1] as number))));
});

test("a Last-Event-ID the history no longer holds gets a reset event", async (t) => {
  const all = await startAdmin(["alpha"]);
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events", { "last-event-id": "oldprocess.7" });
  t.teardown(() => stream.close());
  await until(() => stream.events().length > 0, { what: "the reset event" });
  t.like(stream.events()[0], { event: "reset", data: { reason: "history_lost", lastEventId: "oldprocess.7" } });
});

test("the heartbeat runs on the injected clock", async (t) => {
  const clock = new ManualClock();
  const all = await startAdmin(["alpha"], { clock, events: { heartbeatMs: 15_000 } });
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events");
  t.teardown(() => stream.close());
  await stream.connected();
  clock.advance(14_999);
  clock.advance(1);
  await until(() => stream.frames.some((f) => f.comment === "keep-alive"), { what: "a keep-alive comment" });
  t.is(stream.frames.filter((f) => f.comment === "keep-alive").length, 1);
});

test("a client that never reads is dropped once the history passes it; memory stays within the history bound", async (t) => {
  const historyBytes = 256 * 1024;
  const all = await startAdmin(["m0", "m1", "m2"], { partitions: 65536, events: { historyBytes } });
  t.teardown(() => all.close());
  // A raw socket that asks for every partition event and then never reads a byte.
  const socket = connect(all.port, "127.0.0.1");
  t.teardown(() => socket.destroy());
  socket.pause();
  socket.write("GET /events?types=acquire,release HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => all.admin.events.size === 1, { what: "the stream to be registered" });
  // A reading client on the same stream keeps up: it is fed at its own pace, not dropped.
  const reader = subscribe(all.port, "/events?types=ring");
  t.teardown(() => reader.close());
  await reader.connected();

  for (let i = 3; i < 9; i++) {
    all.source.set(members(...Array.from({ length: i + 1 }, (_, j) => `m${j}`)));
    t.true(all.admin.events.historyBytes <= historyBytes, "the history stays within its bound");
  }
  // The server ends its side; the paused socket never reads far enough to see it.
  await until(() => all.admin.events.size === 1, { what: "the server to drop the client that never reads" });
  await until(() => reader.events().filter((f) => f.event === "ring").length === 6, { what: "six ring events" });
  t.false(reader.ended, "the reading client is still connected");
  t.is(all.admin.events.size, 1);
});

test("/ring?table=false leaves the table out; table=compact indexes the members list; a bad form is a 400", async (t) => {
  const all = await startAdmin(["alpha", "bravo", "charlie"]);
  t.teardown(() => all.close());
  const ring = Ring.build(["alpha", "bravo", "charlie"], { partitions: 64 });
  const none = await send(all.base, "/ring?table=false");
  t.is(none.status, 200);
  t.false("table" in none.json);
  t.is(none.json.checksum, ring.checksum);
  t.deepEqual(none.json.counts, { partitions: 64, members: 3, known: 3, ownerCount: 3 });
  t.deepEqual(
    none.json.members.map((m: { name: string; status: string }) => [m.name, m.status]),
    [
      ["alpha", "up"],
      ["bravo", "up"],
      ["charlie", "up"],
    ],
  );
  const compact = (await send(all.base, "/ring?table=compact")).json;
  t.is(compact.table.length, 64 * 3);
  for (let p = 0; p < 64; p++) {
    const owners = [0, 1, 2].map((r) => compact.ringMembers[compact.table[p * compact.ownerCount + r]]);
    t.deepEqual(owners, ring.ownersOfPartition(p), `partition ${p}`);
  }
  const bad = await send(all.base, "/ring?table=yes");
  t.is(bad.status, 400);
  t.like(bad.json, { error: "bad_request", field: "table" });
});

/** What a page holding `previous` shows after applying a `cells` event: the brute-force reading of it. */
function applyCells(previous: Ring, cells: ReturnType<typeof movedCells>): (string | undefined)[][] {
  const rows = Array.from({ length: previous.config.partitions }, (_, p) =>
    Array.from({ length: previous.ownerCount }, (_, r) => previous.owner(p, r)),
  );
  const slots = cells.slots ?? [];
  for (let i = 0; i < slots.length; i += 3) {
    (rows[slots[i] as number] as (string | undefined)[])[slots[i + 1] as number] = cells.ringMembers[
      slots[i + 2] as number
    ] as string;
  }
  return rows;
}

test("a cells event turns the previous ring's table into the next one, for any join, leave or replacement", (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z]{1,6}$/), { minLength: 4, maxLength: 12 }),
      fc.integer({ min: 1, max: 3 }),
      fc.nat(),
      (names, replicas, pick) => {
        const before = Ring.build(names.slice(1), { partitions: 97, replicas });
        const variants = [
          names,
          names.slice(2),
          [...names.slice(1).filter((_, i) => i !== pick % (names.length - 1)), names[0] as string],
        ];
        for (const next of variants) {
          const after = Ring.build(next, { partitions: 97, replicas });
          const cells = movedCells(after, before);
          if (cells.slots === null) {
            // Only when the owner count changes (or more than half of the slots moved): then the page re-reads.
            const moved = movement(before, after).replicaSlots;
            if (before.ownerCount === after.ownerCount && moved <= 0.5 * 97 * after.ownerCount) return false;
            continue;
          }
          const shown = applyCells(before, cells);
          for (let p = 0; p < 97; p++) {
            if (JSON.stringify(shown[p]) !== JSON.stringify(after.ownersOfPartition(p))) return false;
          }
          if (cells.slots.length / 3 !== movement(before, after).replicaSlots) return false;
        }
        return true;
      },
    ),
    { seed: 23, numRuns: 60 },
  );
  t.pass();
});

test("/changes keeps the last 100 ring changes, numbered and timed, with who gave primaries to whom", async (t) => {
  const all = await startAdmin(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events?types=ring,cells");
  t.teardown(() => stream.close());
  await stream.connected();
  all.source.set(members("alpha", "bravo", "charlie"));
  await until(() => stream.events().length >= 2, { what: "the ring and cells events of the join" });
  const [ring, cells] = stream.events();
  t.is(ring?.event, "ring");
  t.is(cells?.event, "cells");
  const before = Ring.build(["alpha", "bravo"], { partitions: 64 });
  const after = Ring.build(["alpha", "bravo", "charlie"], { partitions: 64 });
  const moved = movement(before, after).primaries;
  // charlie took every moved primary; alpha and bravo gave them.
  const summary = ring?.data as { to: MoveCounts; from: MoveCounts; seq: number; at: string };
  t.deepEqual(summary.to, { members: [{ name: "charlie", partitions: moved }], others: 0 });
  const given = Object.fromEntries(summary.from.members.map((m) => [m.name, m.partitions]));
  for (const name of ["alpha", "bravo"]) {
    let count = 0;
    for (let p = 0; p < 64; p++) if (before.owner(p, 0) === name && after.owner(p, 0) !== name) count++;
    t.is(given[name] ?? 0, count, name);
  }
  t.like(cells?.data, { checksum: after.checksum, previousChecksum: before.checksum, ringMembers: after.members });

  for (let i = 0; i < 104; i++) all.source.set(members("alpha", "bravo", i % 2 === 0 ? "delta" : "echo"));
  // The join was change 1 (the admin server started after the first members): 105 in all.
  await until(() => all.admin.events.changes.at(-1)?.seq === 105, { what: "105 ring changes" });
  const reply = await send(all.base, "/changes");
  t.is(reply.status, 200);
  const changes = reply.json.changes as { seq: number; at: string; added: string[] }[];
  t.is(changes.length, 100);
  t.deepEqual(
    changes.map((c) => c.seq),
    Array.from({ length: 100 }, (_, i) => i + 6),
    "the oldest five are gone",
  );
  t.deepEqual(changes.at(-1)?.added, ["echo"]);
  t.false(Number.isNaN(Date.parse(changes.at(-1)?.at ?? "")));
});

// ---- under coordinated hand-offs the page follows what is routed

/** A slot as a page shows it: the routed member (undefined: none ready) and its state. */
type Shown = { member: string | undefined; state: SlotState };

/** The brute-force reading of a routing table, slot by slot, by name. */
function shownOf(table: RoutingTable): Shown[][] {
  return Array.from({ length: table.ring.config.partitions }, (_, p) =>
    Array.from({ length: table.ranks }, (_, r) => ({ member: table.member(p, r), state: table.state(p, r) })),
  );
}

/** What a page holding `previous` shows after applying routed cells. */
function applyRoutedCells(previous: RoutingTable, cells: ReturnType<typeof routedCells>): Shown[][] {
  const rows = shownOf(previous);
  const slots = cells.slots ?? [];
  for (let i = 0; i < slots.length; i += 3) {
    const index = slots[i + 2] as number;
    (rows[slots[i] as number] as Shown[])[slots[i + 1] as number] = {
      member: index < 0 ? undefined : cells.ringMembers[index],
      state: slotStates[cells.states?.[i / 3] as number] as SlotState,
    };
  }
  return rows;
}

/** Who gave and took primaries between two tables, by name, "none ready" on its own: the model of routedMoves. */
function primaryModel(before: RoutingTable, after: RoutingTable) {
  const from = new Map<string, number>();
  const to = new Map<string, number>();
  let fromNone = 0;
  let toNone = 0;
  let primaries = 0;
  let slots = 0;
  for (let p = 0; p < after.ring.config.partitions; p++) {
    for (let r = 0; r < after.ranks; r++) {
      const was = before.member(p, r);
      const now = after.member(p, r);
      if (was === now) continue;
      slots++;
      if (r > 0) continue;
      primaries++;
      if (was === undefined) fromNone++;
      else from.set(was, (from.get(was) ?? 0) + 1);
      if (now === undefined) toNone++;
      else to.set(now, (to.get(now) ?? 0) + 1);
    }
  }
  const sorted = (m: Map<string, number>) => Object.fromEntries([...m].sort());
  return { primaries, slots, from: sorted(from), to: sorted(to), fromNone, toNone };
}

const slotArbitrary = (pool: string[]) =>
  fc.oneof(
    fc.constant<Shown>({ member: undefined, state: "none" }),
    fc.constantFrom(...pool).map((m): Shown => ({ member: m, state: "moving" })),
    fc.constant<Shown | "owner">("owner"),
  );

test("routed cells turn the previous routing table into the next one, and routedMoves counts who gave to whom, by name", (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z]{1,5}$/), { minLength: 3, maxLength: 8 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 40 }),
      fc.nat(),
      (names, replicas, partitions, seed) => {
        // A member only the old table routes to (it left), and rings before and after.
        const before = Ring.build(names.slice(1), { partitions, replicas });
        const after = Ring.build(names.slice(0, -1), { partitions, replicas });
        const size = partitions * after.ownerCount;
        const [first, second] = fc.sample(fc.array(slotArbitrary(names), { minLength: size, maxLength: size }), {
          seed,
          numRuns: 2,
        }) as [(Shown | "owner")[], (Shown | "owner")[]];
        const table = (ring: Ring, picks: (Shown | "owner")[], version: number) =>
          RoutingTable.coordinated(
            ring,
            picks.map((pick, i) =>
              pick === "owner"
                ? { member: ring.owner(Math.floor(i / ring.ownerCount), i % ring.ownerCount), state: "ready" as const }
                : pick,
            ),
            version,
          );
        if (before.ownerCount !== after.ownerCount) return true;
        const old = table(before, first, 1);
        const next = table(after, second, 2);
        for (const [a, b] of [
          [old, next],
          [next, old],
          [RoutingTable.ready(before), next],
          [next, RoutingTable.ready(after)],
        ] as const) {
          const cells = routedCells(b, a);
          const wanted = shownOf(b);
          let changed = 0;
          const had = shownOf(a);
          for (let p = 0; p < partitions; p++) {
            for (let r = 0; r < b.ranks; r++) {
              const x = had[p]?.[r];
              const y = wanted[p]?.[r];
              if (x?.member !== y?.member || x?.state !== y?.state) changed++;
            }
          }
          if (cells.slots === null) {
            if (changed <= 0.5 * size) return false;
          } else {
            if (JSON.stringify(applyRoutedCells(a, cells)) !== JSON.stringify(wanted)) return false;
            if (cells.slots.length / 3 !== changed) return false;
          }
          const model = primaryModel(a, b);
          const moves = routedMoves(b, a);
          const byName = (counts: { members: { name: string; partitions: number }[] }) =>
            Object.fromEntries(counts.members.map((m) => [m.name, m.partitions]).sort());
          if (
            moves.moved?.primaries !== model.primaries ||
            moves.moved?.slots !== model.slots ||
            JSON.stringify(byName(moves.from)) !== JSON.stringify(model.from) ||
            JSON.stringify(byName(moves.to)) !== JSON.stringify(model.to) ||
            moves.from.none !== model.fromNone ||
            moves.to.none !== model.toNone ||
            moves.from.others !== 0
          ) {
            return false;
          }
        }
        return true;
      },
    ),
    { seed: 23, numRuns: 80 },
  );
  t.pass();
});

test("under coordinated hand-offs, /events and /changes follow what is routed: old owner, none ready, new owner", async (t) => {
  const config = { partitions: 64, replicas: 2 };
  const source = new CoordinatedSource(members("alpha", "bravo"));
  const cluster = new Cluster({ source, ring: config });
  const old = Ring.build(["alpha", "bravo"], config);
  source.table = handoffStep(old, old, "ready", 1);
  await cluster.start();
  const metrics = new Metrics(cluster, { defaultMetrics: false });
  const admin = createAdminServer({ cluster, metrics });
  const { port } = await admin.listen(0, "127.0.0.1");
  t.teardown(async () => {
    await admin.close();
    metrics.close();
    await cluster.stop();
  });
  const stream = subscribe(port, "/events?types=ring,routing,cells");
  t.teardown(() => stream.close());
  await stream.connected();

  // charlie joins: the target ring changes at once, but what is routed only as the hand-off steps.
  source.set(members("alpha", "bravo", "charlie"));
  const target = cluster.ring;
  await until(() => stream.events().length >= 1, { what: "the ring event of the join" });
  t.like(stream.events()[0], { event: "ring", data: { coordinated: true, added: ["charlie"] } });

  const steps = [
    handoffStep(old, target, "moving", 2),
    handoffStep(old, target, "none", 3),
    handoffStep(old, target, "ready", 4),
  ];
  let previous = source.table;
  for (const [i, step] of steps.entries()) {
    source.route(step);
    await until(() => stream.events().length >= 3 + 2 * i, { what: `the routing and cells events of step ${i + 1}` });
    const [routing, cells] = stream.events().slice(1 + 2 * i);
    t.is(routing?.event, "routing");
    t.is(cells?.event, "cells");
    const model = primaryModel(previous, step);
    t.like(routing?.data, {
      kind: "routing",
      version: step.version,
      checksum: step.checksum,
      previousChecksum: previous.checksum,
      moved: { primaries: model.primaries, slots: model.slots },
      states: step.counts,
    });
    const data = routing?.data as ReturnType<typeof routedMoves>;
    t.is(data.from.none, model.fromNone);
    t.is(data.to.none, model.toNone);
    t.deepEqual(Object.fromEntries(data.to.members.map((m) => [m.name, m.partitions]).sort()), model.to);
    t.deepEqual(Object.fromEntries(data.from.members.map((m) => [m.name, m.partitions]).sort()), model.from);
    const applied = applyRoutedCells(previous, cells?.data as ReturnType<typeof routedCells>);
    t.deepEqual(applied, shownOf(step), `step ${i + 1}: the cells give the routed table`);
    previous = step;
  }
  // Step 1 moves nothing (still at the old owners); step 2 takes charlie's primaries to none ready; step 3 gives them to charlie.
  const moved = [...Array(64).keys()].filter((p) => old.owner(p, 0) !== target.owner(p, 0)).length;
  t.true(moved > 0);
  const routings = stream
    .events()
    .filter((f) => f.event === "routing")
    .map((f) => f.data as ReturnType<typeof routedMoves>);
  t.deepEqual(
    routings.map((r) => [r.moved?.primaries, r.from.none, r.to.none]),
    [
      [0, 0, 0],
      [moved, 0, moved],
      [moved, moved, 0],
    ],
  );
  t.deepEqual(routings[2]?.to.members, [{ name: "charlie", partitions: moved }]);

  // The history keeps both kinds, in order.
  const reply = await send(`http://127.0.0.1:${port}`, "/changes");
  t.deepEqual(
    (reply.json.changes as { kind?: string; seq: number }[]).map((c) => [c.seq, c.kind ?? "ring"]),
    [
      [1, "ring"],
      [2, "routing"],
      [3, "routing"],
      [4, "routing"],
    ],
  );
  // The page loads the routed table with the ring.
  const compact = await send(`http://127.0.0.1:${port}`, "/ring?table=compact");
  t.like(compact.json, { checksum: target.checksum, routed: { checksum: steps[2]?.checksum } });
});

test("without hand-offs no routing event is sent: the ring's cells say it all", async (t) => {
  const all = await startAdmin(["alpha", "bravo"]);
  t.teardown(() => all.close());
  const stream = subscribe(all.port, "/events?types=ring,routing,cells");
  t.teardown(() => stream.close());
  await stream.connected();
  all.source.set(members("alpha", "bravo", "charlie"));
  all.source.set(members("alpha", "charlie"));
  await until(() => stream.events().length >= 4, { what: "two ring and cells events" });
  t.deepEqual(
    stream.events().map((f) => f.event),
    ["ring", "cells", "ring", "cells"],
  );
  t.like(stream.events()[0]?.data, { coordinated: false });
  t.deepEqual(
    all.admin.events.changes.map((c) => ("kind" in c ? c.kind : "ring")),
    ["ring", "ring"],
  );
  const compact = await send(all.base, "/ring?table=compact");
  t.false("routed" in compact.json);
});
