/**
 * One member's side of hand-offs, on a manual clock: what it advertises
 * ready, how it gives up a stuck step, what fencing does, and how long a new
 * owner waits for an old one. The other members' documents are plain maps
 * the test writes, as etcd would deliver them.
 */
import test from "ava";
import { type HandoffHandlers, HandoffRunner, type HandoffStep } from "../src/handoff/runner.ts";
import { fromLists, slotOf } from "../src/handoff/slots.ts";
import type { HandoffDoc, VersionDoc } from "../src/membership/etcd/documents.ts";
import { Ring, type RingConfig } from "../src/ring/ring.ts";
import { flush, ManualClock } from "./helpers/clock.ts";
import { recordingLogger } from "./helpers/logger.ts";

const ring = Ring.build([], { partitions: 8, replicas: 1 }).config as RingConfig;
const TIMEOUT = 5000;

function version(n: number, members: string[], previous: string[]): VersionDoc {
  return { version: n, members, previous, ring, checksum: Ring.build(members, ring).checksum };
}

/** A partition `a` owns alone and `b` owns once both are in. */
function movingPartition(): number {
  const both = Ring.build(["a", "b"], ring);
  for (let p = 0; p < ring.partitions; p++) if (both.owner(p, 0) === "b") return p;
  throw new Error("no partition moves to b");
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}
function deferred(): Deferred {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function runner(
  handlers: HandoffHandlers,
  others: { alive?: Set<string>; docs?: Map<string, HandoffDoc>; written?: (doc: HandoffDoc) => Promise<void> } = {},
) {
  const clock = new ManualClock();
  const { logger, entries } = recordingLogger();
  const published: { doc: HandoffDoc; done: boolean }[] = [];
  const alive = others.alive ?? new Set(["a", "b"]);
  const docs = others.docs ?? new Map<string, HandoffDoc>();
  const r = new HandoffRunner({
    name: "a",
    handlers,
    timeout: TIMEOUT,
    clock,
    logger,
    alive: (m) => alive.has(m),
    progress: (m) => docs.get(m),
    publish: (doc, done) => {
      published.push({ doc, done });
      return others.written?.(doc);
    },
  });
  const last = () => published.at(-1) as { doc: HandoffDoc; done: boolean };
  const ready = () => fromLists(last().doc.ready);
  return { r, clock, entries, published, last, ready, alive, docs };
}

test("a slot moved away and back in one batch is not advertised ready while its release is queued or running (D4)", async (t) => {
  const p = movingPartition();
  const slot = slotOf(p, 0);
  const releasing = deferred();
  const calls: string[] = [];
  const { r, ready, last, docs } = runner({
    release: async (partition, _to, _rank, step) => {
      calls.push(`release ${partition} v${step.version}`);
      await releasing.promise;
    },
    acquire: (partition, from, _rank, step) => void calls.push(`acquire ${partition} from ${from} v${step.version}`),
  });
  r.apply(version(1, ["a"], []));
  await flush();
  t.true(ready().has(slot), "a holds it alone");
  // One watch batch: b joins (v2) and leaves again (v3).
  r.apply(version(2, ["a", "b"], ["a"]));
  r.apply(version(3, ["a"], ["a", "b"]));
  t.false(ready().has(slot), "not ready while the release of v2 is queued");
  t.true(r.holds(p, 0), "still served: its release has not begun, so nobody else can have it");
  await flush();
  const ofP = () => calls.filter((c) => c.startsWith(`release ${p} `) || c.startsWith(`acquire ${p} `));
  t.deepEqual(ofP().slice(-1), [`release ${p} v2`]);
  t.false(ready().has(slot), "nor while it runs");
  t.false(r.holds(p, 0), "not served once the release began");
  releasing.resolve();
  await flush();
  t.false(ready().has(slot), "b has not released its v3 slot yet");
  const both = Ring.build(["a", "b"], ring);
  const moved = [...Array(ring.partitions).keys()].filter((q) => both.owner(q, 0) === "b");
  docs.set("b", { version: 3, ready: {}, released: { "3": { "0": moved } } });
  r.recheck();
  await flush();
  t.deepEqual(ofP().slice(-1), [`acquire ${p} from b v3`]);
  t.true(ready().has(slot));
  t.true(r.holds(p, 0));
  t.true(last().done);
});

test("a release begins only once the document saying the member took the version up is written", async (t) => {
  const p = movingPartition();
  const calls: string[] = [];
  const writes = new Map<number, Deferred>();
  const { r, published } = runner(
    {
      release: (partition, _to, _rank, step) => void calls.push(`release ${partition} v${step.version}`),
      acquire: (partition, _from, _rank, step) => void calls.push(`acquire ${partition} v${step.version}`),
    },
    {
      written: (doc) => {
        let write = writes.get(doc.version);
        if (write === undefined) {
          write = deferred();
          writes.set(doc.version, write);
        }
        return write.promise;
      },
    },
  );
  r.apply(version(1, ["a"], []));
  await flush();
  t.true(calls.includes(`acquire ${p} v1`), "an acquire does not wait for the write");
  r.apply(version(2, ["a", "b"], ["a"]));
  await flush();
  t.false(calls.includes(`release ${p} v2`), "the v2 document is not written yet: the slot is still served");
  t.is(published.at(-1)?.doc.version, 2, "it was handed to the store");
  writes.get(2)?.resolve();
  await flush();
  t.true(calls.includes(`release ${p} v2`), "written: the release begins");
});

test("a release still running after handoffTimeout is given up: its signal fires, the slot is marked released, the step counts as failed", async (t) => {
  const p = movingPartition();
  const both = Ring.build(["a", "b"], ring);
  const moving = [...Array(ring.partitions).keys()].filter((q) => both.owner(q, 0) === "b");
  let signal: AbortSignal | undefined;
  const { r, clock, last, entries } = runner({
    release: (partition, _to, _rank, step) => {
      if (partition !== p) return;
      signal = step.signal;
      return new Promise(() => {}); // never settles
    },
  });
  r.apply(version(1, ["a"], []));
  await flush();
  r.apply(version(2, ["a", "b"], ["a"]));
  await flush();
  t.false(r.holds(p, 0), "not served from the moment the release starts");
  await clock.run(TIMEOUT - 1);
  t.false(signal?.aborted);
  t.false(last().done, "the version is not done while the release runs");
  t.false(fromLists(last().doc.released["2"] ?? {}).has(slotOf(p, 0)));
  await clock.run(1);
  t.true(signal?.aborted);
  t.is(signal?.reason, "timeout");
  t.true(last().done, "done (with an error) once given up");
  t.deepEqual(last().doc.released, { "2": { "0": moving } }, "the new owner may acquire");
  t.is(r.failures, 1);
  t.true(entries.some((e) => e.level === "error" && /release still running after handoffTimeout/.test(e.msg)));
  // Later versions settle: the stuck step no longer holds up the chain.
  r.apply(version(3, ["a", "b", "c"], ["a", "b"]));
  await flush();
  t.true(last().done);
  t.is(last().doc.version, 3);
});

test("fencing fires every running step's signal, clears the held set, and the next version starts from nothing", async (t) => {
  const acquiring = deferred();
  const steps: HandoffStep[] = [];
  const acquired: number[] = [];
  const { r, last, ready } = runner({
    acquire: async (partition, _from, _rank, step) => {
      steps.push(step);
      if (partition === 0) await acquiring.promise;
      acquired.push(partition);
    },
  });
  r.apply(version(1, ["a"], []));
  await flush();
  t.false(r.holds(0, 0), "partition 0 still acquiring");
  t.true(r.holds(1, 0));
  t.is(r.held.size, ring.partitions - 1);
  r.fence();
  t.is(r.held.size, 0);
  t.false(r.holds(1, 0));
  t.true(steps.find((s) => !s.signal.aborted) === undefined || steps[0]?.signal.aborted === true);
  t.is(steps[0]?.signal.reason, "fenced");
  t.is(r.version, undefined);
  acquiring.resolve();
  await flush();
  t.false(r.holds(0, 0), "an acquire that finishes after the fencing does not count");
  t.is(r.held.size, 0);
  const before = steps.length;
  r.apply(version(1, ["a"], []));
  await flush();
  t.is(steps.length - before, ring.partitions, "every partition acquired again through the protocol");
  t.is(ready().size, ring.partitions);
  t.is(last().doc.version, 1);
});

test("an acquire a later version moves away is aborted (superseded) and never held", async (t) => {
  const p = movingPartition();
  let signal: AbortSignal | undefined;
  const releases: number[] = [];
  const { r, last, docs } = runner(
    {
      acquire: (partition, _from, _rank, step) => {
        if (partition !== p) return;
        signal = step.signal;
        return new Promise(() => {});
      },
      release: (partition) => void releases.push(partition),
    },
    { alive: new Set(["a", "b"]) },
  );
  docs.set("b", { version: 1, ready: {}, released: { "2": { "0": [p] } } });
  r.apply(version(1, ["b"], []));
  r.apply(version(2, ["a"], ["b"]));
  await flush();
  t.truthy(signal, "a is acquiring p from b");
  r.apply(version(3, ["a", "b"], ["a"]));
  t.true(signal?.aborted);
  t.is(signal?.reason, "superseded");
  await flush();
  t.false(r.held.has(slotOf(p, 0)));
  t.deepEqual(releases, [], "nothing to release: it never held p");
  t.deepEqual(last().doc.released["3"], { "0": [p] });
});

test("a new owner waits for an old owner that speaks the protocol for as long as it takes, for one without a document only handoffTimeout", async (t) => {
  const p = movingPartition();
  const acquired: number[] = [];
  // a is the new owner: b had everything in v1, a joins in v2.
  const { r, clock, docs } = runner({ acquire: (partition) => void acquired.push(partition) });
  docs.set("b", { version: 1, ready: { "0": [p] }, released: {} });
  r.apply(version(1, ["b"], []));
  r.apply(version(2, ["a", "b"], ["b"]));
  await clock.run(TIMEOUT * 10);
  const mine = Ring.build(["a", "b"], ring);
  const owned = [...Array(ring.partitions).keys()].filter((q) => mine.owner(q, 0) === "a");
  t.deepEqual(acquired, [], "b is alive and has not released: a waits");
  t.is(r.timeouts, 0);
  docs.set("b", { version: 2, ready: {}, released: { "2": { "0": owned } } });
  r.recheck();
  await flush();
  t.deepEqual(acquired.sort(), owned);

  // The same move from a member that never wrote a hand-off document.
  const mute = runner({ acquire: (partition) => void acquired.push(partition) });
  acquired.length = 0;
  mute.r.apply(version(1, ["b"], []));
  mute.r.apply(version(2, ["a", "b"], ["b"]));
  await flush();
  await mute.clock.run(TIMEOUT - 1);
  t.deepEqual(acquired, []);
  await mute.clock.run(1);
  t.deepEqual(acquired.sort(), owned);
  t.is(mute.r.timeouts, owned.length);

  // And from one that is gone (dead, left or fenced: its lease is gone): at once.
  const gone = runner({ acquire: (partition) => void acquired.push(partition) }, { alive: new Set(["a"]) });
  acquired.length = 0;
  gone.docs.set("b", { version: 1, ready: { "0": [p] }, released: {} });
  gone.r.apply(version(1, ["b"], []));
  gone.r.apply(version(2, ["a", "b"], ["b"]));
  await flush();
  t.deepEqual(acquired.sort(), owned);
  t.is(gone.r.timeouts, 0);
});

test("stop fires the signals of running steps with reason stopped", async (t) => {
  let signal: AbortSignal | undefined;
  const { r } = runner({
    acquire: (_p, _f, _r, step) => {
      signal ??= step.signal;
      return new Promise(() => {});
    },
  });
  r.apply(version(1, ["a"], []));
  await flush();
  r.stop();
  t.is(signal?.reason, "stopped");
  t.false(r.holds(0, 0));
});

test("a new owner stops waiting for a release the old owner's new registration will never mark (its `since` is later) once it has taken that version up, and only then", async (t) => {
  // `a` joins at v3 and takes a partition from `b`, which held it at v2.
  const both = Ring.build(["a", "b"], ring);
  let p = -1;
  for (let q = 0; q < ring.partitions && p < 0; q++) if (both.owner(q, 0) === "a") p = q;
  const slot = slotOf(p, 0);
  const acquired: number[] = [];
  const { r, docs } = runner({ acquire: (partition) => void acquired.push(partition) });
  r.apply(version(2, ["b"], []));
  r.apply(version(3, ["a", "b"], ["b"]));
  await flush();
  // b's document of a life that took v3 up as its first: it held the slot at v2 in an earlier life.
  docs.set("b", { version: 3, ready: {}, released: {}, since: 3 });
  r.recheck();
  await flush();
  t.false(acquired.includes(p), "a release of v3 is owed by b's registration since v3: still waited for");
  docs.set("b", { version: 4, ready: {}, released: {}, since: 4 });
  r.recheck();
  await flush();
  t.false(acquired.includes(p), "not before a has taken up v4 itself (its ring might give the slot to b's new life)");
  r.apply(version(4, ["a", "b"], ["a", "b"]));
  r.recheck();
  await flush();
  t.true(acquired.includes(p), "b's registration began after v3: nothing of v3 is owed");
  t.true(r.held.has(slot));
  t.is(r.timeouts, 0, "no timeout was needed");
});
