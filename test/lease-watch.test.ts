import test from "ava";
import { LeaseWatch } from "../src/membership/etcd/lease-watch.ts";
import { ManualClock } from "./helpers/clock.ts";

const TTL = 3000;

function watch() {
  const clock = new ManualClock();
  let expired = 0;
  const w = new LeaseWatch(clock, TTL, () => expired++);
  return { clock, w, expired: () => expired };
}

test("a member with no keepalive answered is fenced a TTL after the grant was sent", (t) => {
  const { clock, w, expired } = watch();
  const sentAt = clock.now();
  clock.advance(400); // the grant's round trip
  w.start(sentAt);
  clock.advance(TTL - 401);
  t.is(expired(), 0);
  clock.advance(1);
  t.is(expired(), 1);
  t.true(w.expired);
});

test("the deadline is a TTL after the send of the last answered keepalive, not after its answer", (t) => {
  const { clock, w, expired } = watch();
  w.start(clock.now());
  clock.advance(1000);
  w.sent(); // at 1000
  clock.advance(900);
  w.answered(); // answered at 1900: alive surely until 1000 + TTL
  clock.advance(1000 + TTL - 1900 - 1);
  t.is(expired(), 0);
  clock.advance(1);
  t.is(expired(), 1);
});

test("keepalives sent but never answered do not move the deadline; a new stream forgets them", (t) => {
  const { clock, w, expired } = watch();
  w.start(clock.now());
  clock.advance(1000);
  w.sent(); // lost with its stream
  clock.advance(1000);
  w.sent(); // lost too
  w.reset(); // a new keepalive stream
  clock.advance(500);
  w.sent(); // at 2500
  clock.advance(100);
  w.answered();
  clock.advance(2500 + TTL - 2600 - 1);
  t.is(expired(), 0, "the answer counts for the keepalive sent at 2500, not the lost one at 1000");
  clock.advance(1);
  t.is(expired(), 1);
});

test("once expired or stopped, nothing fires again", (t) => {
  const { clock, w, expired } = watch();
  w.start(clock.now());
  clock.advance(TTL);
  w.sent();
  w.answered();
  clock.advance(TTL * 3);
  t.is(expired(), 1);
  const other = watch();
  other.w.start(other.clock.now());
  other.w.stop();
  other.clock.advance(TTL * 3);
  t.is(other.expired(), 0);
});
