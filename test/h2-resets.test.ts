/**
 * Rapid-reset protection as a rule on the proxy's clock: how many streams a
 * connection may cancel, checked on a manual clock and, for any schedule of
 * cancellations, against the bound the README states.
 */
import test from "ava";
import fc from "fast-check";
import { fullBucket, ResetBudget, spendReset } from "../src/proxy/h2/resets.ts";
import { ManualClock } from "./helpers/clock.ts";

const limit = { burst: 100, perSecond: 10, minLifetimeMs: 1_000 };

test("a fresh connection may cancel `burst` streams at once; the next one is past the limit", (t) => {
  const clock = new ManualClock();
  const budget = new ResetBudget(limit, clock.now());
  for (let i = 0; i < 100; i++) t.false(budget.spend(clock.now()), `cancellation ${i + 1} is within the burst`);
  t.true(budget.spend(clock.now()), "cancellation 101 at the same instant is one too many");
});

test("the budget comes back at `perSecond`, never past `burst`", (t) => {
  const clock = new ManualClock();
  const budget = new ResetBudget(limit, clock.now());
  for (let i = 0; i < 100; i++) budget.spend(clock.now());
  clock.advance(99);
  t.true(budget.spend(clock.now()), "99 ms regain less than one cancellation");
  clock.advance(1);
  t.false(budget.spend(clock.now()), "100 ms regain one");
  t.true(budget.spend(clock.now()), "and only one");
  clock.advance(3_600_000);
  for (let i = 0; i < 100; i++) t.false(budget.spend(clock.now()), "an hour later the whole burst is back");
  t.true(budget.spend(clock.now()), "but no more than the burst");
});

test("a client cancelling steadily below the rate is never cut off, however long it goes on", (t) => {
  const clock = new ManualClock();
  const budget = new ResetBudget(limit, clock.now());
  for (let i = 0; i < 10_000; i++) {
    t.false(budget.spend(clock.now()));
    clock.advance(100); // 10 a second
  }
});

test("only a stream cancelled within minLifetimeMs of opening counts", (t) => {
  const clock = new ManualClock();
  const budget = new ResetBudget({ burst: 1, perSecond: 0, minLifetimeMs: 1_000 }, clock.now());
  const opened = clock.now();
  clock.advance(1_000);
  for (let i = 0; i < 1_000; i++) t.false(budget.cancelled(opened, clock.now()), "a stream that lived 1 s");
  t.false(budget.cancelled(clock.now() - 999, clock.now()), "one that lived 999 ms spends the one token");
  t.true(budget.cancelled(clock.now(), clock.now()), "and the next quick one is too many");
});

test("a clock that steps back regains nothing", (t) => {
  let bucket = fullBucket({ burst: 1, perSecond: 1000, minLifetimeMs: 1_000 }, 5_000);
  bucket = spendReset(bucket, { burst: 1, perSecond: 1000, minLifetimeMs: 1_000 }, 5_000).bucket;
  t.true(spendReset(bucket, { burst: 1, perSecond: 1000, minLifetimeMs: 1_000 }, 1_000).calm);
});

test("over any interval, the cancellations allowed are at most burst + perSecond × its length", (t) => {
  fc.assert(
    fc.property(
      fc.record({
        burst: fc.integer({ min: 1, max: 20 }),
        perSecond: fc.integer({ min: 0, max: 50 }),
        minLifetimeMs: fc.constant(1_000),
      }),
      fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 300 }),
      (rule, gaps) => {
        const clock = new ManualClock();
        const budget = new ResetBudget(rule, clock.now());
        const allowed: number[] = [];
        for (const gap of gaps) {
          clock.advance(gap);
          if (!budget.spend(clock.now())) allowed.push(clock.now());
        }
        // Brute force: every window between two allowed cancellations.
        for (let i = 0; i < allowed.length; i++) {
          for (let j = i; j < allowed.length; j++) {
            const seconds = ((allowed[j] as number) - (allowed[i] as number)) / 1000;
            if (j - i + 1 > rule.burst + rule.perSecond * seconds + 1e-9) return false;
          }
        }
        return true;
      },
    ),
  );
  t.pass();
});

test("over any schedule, a cancellation is refused exactly when allowing it would break that bound", (t) => {
  fc.assert(
    fc.property(
      fc.record({
        burst: fc.integer({ min: 1, max: 20 }),
        perSecond: fc.integer({ min: 0, max: 50 }),
        minLifetimeMs: fc.constant(1_000),
      }),
      fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 300 }),
      (rule, gaps) => {
        const clock = new ManualClock();
        const start = clock.now();
        const budget = new ResetBudget(rule, start);
        const allowed: number[] = [];
        for (const gap of gaps) {
          clock.advance(gap);
          const now = clock.now();
          // Brute force over every window ending now: from the start, or from an allowed cancellation.
          const breaks = [start, ...allowed].some((from) => {
            const inWindow = allowed.filter((at) => at >= from).length + 1;
            return inWindow * 1000 > rule.burst * 1000 + rule.perSecond * (now - from);
          });
          const refused = budget.spend(now);
          if (refused !== breaks) return false;
          if (!refused) allowed.push(now);
        }
        return true;
      },
    ),
  );
  t.pass();
});
