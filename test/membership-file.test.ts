import { mkdtemp, open, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { FileSource, parseMembersFile } from "../src/membership/file.ts";
import {
  initialSettle,
  nextSettle,
  type SettleEvent,
  type SettleState,
  startSettle,
} from "../src/membership/file-settle.ts";
import { createSource } from "../src/membership/index.ts";
import type { Clock } from "../src/utils/clock.ts";
import { ManualClock } from "./helpers/clock.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { until } from "./helpers/until.ts";

const a = { name: "a", url: "http://10.0.0.1:8080", tags: {}, state: "alive" };
const b = { name: "b", url: "http://10.0.0.2:8080", tags: {}, state: "alive" };

test("a YAML list, a YAML members: mapping, JSON and name-url lines all read the same", (t) => {
  const yamlList = "- name: a\n  url: http://10.0.0.1:8080\n- {name: b, url: 'http://10.0.0.2:8080'}\n";
  const yamlMembers =
    "members:\n  - name: a\n    url: http://10.0.0.1:8080\n  - name: b\n    url: http://10.0.0.2:8080\n";
  const json = JSON.stringify({
    members: [
      { name: "a", url: a.url },
      { name: "b", url: b.url },
    ],
  });
  const lines = "# backends\na http://10.0.0.1:8080\n\n  b\thttp://10.0.0.2:8080  \n";
  t.deepEqual(parseMembersFile(yamlList, "m.yaml"), [a, b]);
  t.deepEqual(parseMembersFile(yamlMembers, "members"), [a, b]);
  t.deepEqual(parseMembersFile(json, "m.json"), [a, b]);
  t.deepEqual(parseMembersFile(lines, "m.txt"), [a, b]);
  t.deepEqual(parseMembersFile("a http://10.0.0.1:8080\n", "m"), [a]);
});

test("tags in a structured file are kept as strings", (t) => {
  const [m] = parseMembersFile("- {name: a, url: 'http://h:1', tags: {zone: eu, weight: 2}}", "m.yaml");
  t.deepEqual(m?.tags, { zone: "eu", weight: "2" });
});

test("a file that cannot be used is rejected naming the file and the entry or line", (t) => {
  const bad: [string, string, RegExp][] = [
    ["m.txt", "a http://h:1\nb\n", /^m\.txt:2: expected "name url", got "b"$/],
    ["m.txt", "a http://h:1\nb ftp://h:1\n", /^m\.txt:2 url: must be an http\(s\) URL, got "ftp:\/\/h:1"$/],
    [
      "m.yaml",
      "- {name: a, url: 'http://h:1'}\n- {url: 'http://h:2'}\n",
      /^m\.yaml: \[1\]\.name: must be a non-empty string$/,
    ],
    ["m.yaml", "members:\n  - {name: a, url: nope}\n", /^m\.yaml: members\[0\]\.url: must be an http/],
    ["m.txt", "a http://h:0\n", /^m\.txt:1 url: port must be 1-65535, got "http:\/\/h:0"$/],
    ["m.txt", "a http://h:65536\n", /^m\.txt:1 url: port must be 1-65535/],
    ["m.txt", "a http://u:p@h:1\n", /^m\.txt:1 url: must not carry credentials/],
    ["m.txt", "a http://:1\n", /^m\.txt:1 url: /],
    ["m.yaml", "members: [a\n", /^m\.yaml: not valid YAML/],
    ["m.json", "{", /^m\.json: not valid JSON/],
    ["m.yaml", "members: 3\n", /^m\.yaml: must be a list/],
    ["m.txt", "a http://h:1\na http://h:2\n", /^m\.txt: duplicate member "a"$/],
    ["m.txt", "# nobody\n", /^m\.txt: lists no members$/],
    ["m.txt", "", /^m\.txt: lists no members$/],
  ];
  for (const [path, text, message] of bad) {
    const error = t.throws(() => parseMembersFile(text, path), { instanceOf: ConfigError });
    t.regex(error?.message ?? "", message, `${path}: ${JSON.stringify(text)}`);
  }
});

// ---------------------------------------------------------------------------
// The settle rule, table by table: (state, event, now) → (state, actions).

/** Feeds timed events from `state`; one line per event with the actions asked for. */
function settleRun(events: [number, SettleEvent][], state: SettleState = initialSettle, settle = 200): string[] {
  return events.map(([now, event]) => {
    const step = nextSettle(state, event, now, settle);
    state = step.state;
    const actions = step.actions.map((a) => (a.type === "schedule" ? `schedule ${a.delay}` : a.type));
    const label =
      event.type === "stamp"
        ? `stamp ${event.stamp}`
        : event.type === "read"
          ? `read ${event.before}..${event.after}`
          : event.type;
    return `${now} ${label}: ${actions.join(", ") || "-"}`;
  });
}

const look: SettleEvent = { type: "look" };
const due: SettleEvent = { type: "due" };
const stamp = (s: string): SettleEvent => ({ type: "stamp", stamp: s });
const read = (before: string, after: string): SettleEvent => ({ type: "read", before, after });

test("settle rule: a change is read once the same stamp is seen settle ms apart, and used if the read held still", (t) => {
  t.deepEqual(
    settleRun([
      [0, look],
      [0, stamp("v1")],
      [200, due],
      [200, stamp("v1")],
      [205, read("v1", "v1")],
    ]),
    ["0 look: stat", "0 stamp v1: schedule 200", "200 due: stat", "200 stamp v1: read", "205 read v1..v1: use"],
  );
});

test("settle rule: a second piece written 50 ms later restarts the wait", (t) => {
  t.deepEqual(
    settleRun([
      [0, stamp("half")],
      [50, stamp("whole")],
      [200, stamp("whole")],
      [250, stamp("whole")],
    ]),
    [
      "0 stamp half: schedule 200",
      "50 stamp whole: schedule 200",
      "200 stamp whole: schedule 50",
      "250 stamp whole: read",
    ],
  );
});

test("settle rule: a file that changed while it was read is not used; the new version waits to settle", (t) => {
  t.deepEqual(
    settleRun([
      [0, stamp("v1")],
      [200, stamp("v1")],
      [201, read("v1", "v2")],
      [401, stamp("v2")],
    ]),
    ["0 stamp v1: schedule 200", "200 stamp v1: read", "201 read v1..v2: schedule 200", "401 stamp v2: read"],
  );
});

test("settle rule: the stamp already read needs nothing; looks during a read wait for it", (t) => {
  t.deepEqual(
    settleRun([
      [0, stamp("v1")],
      [200, stamp("v1")],
      [210, look],
      [210, stamp("v9")],
      [220, read("v1", "v1")],
      [300, stamp("v1")],
    ]),
    [
      "0 stamp v1: schedule 200",
      "200 stamp v1: read",
      "210 look: -",
      "210 stamp v9: -",
      "220 read v1..v1: use",
      "300 stamp v1: -",
    ],
  );
});

test("settle rule: at start the file is read at once and used if it held still", (t) => {
  const { state, actions } = startSettle();
  t.deepEqual(actions, [{ type: "read" }]);
  t.deepEqual(settleRun([[0, read("v1", "v1")]], state), ["0 read v1..v1: use"]);
  t.deepEqual(settleRun([[0, read("v1", "v2")]], state), ["0 read v1..v2: schedule 200"]);
});

const pollInterval = 100;
const settle = 200;

/**
 * A temp directory with a members file and a cluster watching it on a
 * manual clock, polling only: the file changes for real, and the source
 * looks at it only when the test moves the clock.
 */
async function watched(
  t: { teardown(fn: () => Promise<void>): void },
  text: string | undefined,
  options: { clock?: Clock; watch?: boolean } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-file-"));
  const path = join(dir, "members.txt");
  if (text !== undefined) await writeFile(path, text);
  const clock = new ManualClock();
  const { logger, entries } = recordingLogger("trace");
  const source = new FileSource({ path, pollInterval, settle, watch: false, clock, logger, ...options });
  const cluster = new Cluster({ source, ring: { partitions: 16, replicas: 2 } });
  const errors: string[] = [];
  const rings: string[] = [];
  cluster.listen({ sourceError: (e) => errors.push(e.message), ring: (r) => rings.push(r.members.join(",")) });
  t.teardown(async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await cluster.start();
  const looks = () => entries.filter((e) => e.msg === "members file looked at").length;
  return {
    dir,
    path,
    clock,
    cluster,
    entries,
    errors,
    rings,
    /** One poll: moves the clock to it and waits for its stat to come back. */
    async poll(): Promise<void> {
      const before = looks();
      await clock.run(pollInterval);
      await until(() => looks() > before, { what: "the poll's look at the file" });
    },
    /** Moves the clock a poll at a time until `condition` holds. */
    async drive(condition: () => boolean, what: string): Promise<void> {
      await until(
        async () => {
          if (condition()) return true;
          await clock.run(pollInterval);
          return condition();
        },
        { what },
      );
    },
  };
}

/** The stamps the source saw and waited on to settle, by file size. */
const settling = (entries: { msg: string; stamp?: string }[]) =>
  entries
    .filter((e) => e.msg === "members file changed; waiting for it to settle")
    .map((e) => Number(e.stamp?.split("/")[1]));

test("the file's members are in the ring once start resolves, and an edit moves the ring", async (t) => {
  const { path, cluster, drive } = await watched(t, "a http://127.0.0.1:1\nb http://127.0.0.1:2\n");
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  await writeFile(path, "a http://127.0.0.1:1\nb http://127.0.0.1:2\nc http://127.0.0.1:3\n");
  await drive(() => cluster.size === 3, "c in the ring");
  t.is(cluster.member("c")?.url, "http://127.0.0.1:3");
});

test("a file written in two pieces 50 ms apart is never applied half-written", async (t) => {
  const before = "a http://127.0.0.1:2911\n";
  const after = "a http://127.0.0.1:2911\nb http://127.0.0.1:2912\n";
  // The first piece parses: b with a truncated port, the bad case of a half-written file.
  const cut = after.length - 2;
  const { path, clock, cluster, entries, rings, poll, drive } = await watched(t, before);
  const file = await open(path, "w");
  await file.write(after.slice(0, cut));
  await poll();
  t.deepEqual(settling(entries), [cut], "the source saw the first piece and waits for it to settle");
  await clock.run(50);
  await file.write(after.slice(cut));
  await file.close();
  await poll();
  t.deepEqual(settling(entries), [cut, after.length], "the second piece restarts the wait");
  t.deepEqual(cluster.ring.members, ["a"]);
  await drive(() => cluster.size === 2, "the whole file applied");
  t.deepEqual(rings, ["a", "a,b"]);
  t.is(cluster.member("b")?.url, "http://127.0.0.1:2912");
});

test("a change is read only after the file stood still for the settle period", async (t) => {
  const { path, clock, cluster, entries, poll } = await watched(t, "a http://127.0.0.1:1\n");
  await writeFile(path, "a http://127.0.0.1:1\nb http://127.0.0.1:2\n");
  await poll();
  t.is(settling(entries).length, 1);
  const read = () => entries.filter((e) => e.msg === "members file read whole").length;
  const reads = read();
  // Polls within the settle period see the same stamp and keep waiting.
  for (let waited = pollInterval; waited < settle; waited += pollInterval) await poll();
  t.is(read(), reads);
  t.false(cluster.has("b"));
  await clock.run(settle);
  await until(() => cluster.has("b"), { what: "b in the ring once the file settled" });
});

test("a file replaced by rename (how editors and config tools write) is picked up by fs.watch", async (t) => {
  const { dir, path, cluster } = await watched(t, "a http://127.0.0.1:1\n", { clock: undefined, watch: true });
  const staged = join(dir, ".members.txt.new");
  await writeFile(staged, "z http://127.0.0.1:9\n");
  await rename(staged, path);
  // Real time: fs.watch and the settle period on the system clock.
  await until(() => cluster.ring.members.join() === "z", { what: "the renamed file's member z in the ring" });
  t.is(cluster.member("z")?.url, "http://127.0.0.1:9");
});

test("a file that stops parsing keeps the last good view, reports one error, and recovers", async (t) => {
  const { path, cluster, errors, rings, poll, drive } = await watched(
    t,
    "a http://127.0.0.1:1\nb http://127.0.0.1:2\n",
  );
  const ring = cluster.ring;
  await writeFile(path, "a http://127.0.0.1:1\nb\n");
  await drive(() => !cluster.sourceUp, "the source down");
  // Ten more polls see the same bad file: it is not reported again.
  for (let i = 0; i < 10; i++) await poll();
  t.is(cluster.ring, ring);
  t.true(cluster.synced);
  t.deepEqual(errors, ['members.txt:2: expected "name url", got "b"'.replace("members.txt", path)]);
  t.is(cluster.sourceState.lastError, errors[0]);
  await writeFile(path, "b http://127.0.0.1:2\n");
  await drive(() => cluster.sourceUp, "the source up again");
  t.deepEqual(cluster.ring.members, ["b"]);
  t.deepEqual(rings, ["a,b", "b"]);
});

test("an emptied file is taken for a write in progress, not for 'remove everyone'", async (t) => {
  const { path, cluster, errors, drive } = await watched(t, "a http://127.0.0.1:1\n");
  await writeFile(path, "");
  await drive(() => !cluster.sourceUp, "the source down");
  t.deepEqual(cluster.ring.members, ["a"]);
  t.regex(errors[0] ?? "", /lists no members/);
});

test("a member URL that is not strictly valid keeps the last view", async (t) => {
  const { path, cluster, errors, drive } = await watched(t, "a http://127.0.0.1:1\n");
  await writeFile(path, "a http://127.0.0.1:1\nb http://user:secret@127.0.0.1:2\n");
  await drive(() => !cluster.sourceUp, "the source down");
  t.deepEqual(cluster.ring.members, ["a"]);
  t.regex(errors[0] ?? "", /members\.txt:2 url: must not carry credentials/);
});

test("a deleted file keeps the last view; the same content restored brings the source back up", async (t) => {
  const text = "a http://127.0.0.1:1\n";
  const { path, cluster, rings, drive } = await watched(t, text);
  await unlink(path);
  await drive(() => !cluster.sourceUp, "the source down");
  t.regex(cluster.sourceState.lastError ?? "", /members\.txt: cannot read \(ENOENT\)/);
  await writeFile(path, text);
  await drive(() => cluster.sourceUp, "the source up again");
  t.deepEqual(rings, ["a"]);
});

test("a file missing at start leaves the cluster unsynced until it appears", async (t) => {
  const { path, cluster, drive } = await watched(t, undefined);
  t.false(cluster.synced);
  t.regex(cluster.sourceState.lastError ?? "", /members\.txt: cannot read \(ENOENT\)/);
  await writeFile(path, "a http://127.0.0.1:1\n");
  await drive(() => cluster.synced, "the cluster synced");
  t.deepEqual(cluster.ring.members, ["a"]);
});

test("after stop no timer is left", async (t) => {
  const { clock, cluster } = await watched(t, "a http://127.0.0.1:1\n");
  t.true(clock.pending > 0);
  await cluster.stop();
  t.is(clock.pending, 0);
});

test("membership.file in config builds a watching file source with its settle period", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-file-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "members.yaml");
  await writeFile(path, "members:\n  - {name: a, url: 'http://127.0.0.1:1'}\n");
  const config = parseMembershipConfig({ file: { path, settle: "1s" } });
  t.deepEqual(config.file, { path, pollInterval: 500, settle: 1000 });
  t.is(parseMembershipConfig({ file: { path } }).file?.settle, 200);
  const source = createSource(config);
  t.is(source.kind, "file");
  const cluster = new Cluster({ source });
  await cluster.start();
  t.deepEqual(cluster.ring.members, ["a"]);
  await cluster.stop();
});

test("a source stopped and started again reports the file again", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-file-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "members.txt");
  await writeFile(path, "a http://127.0.0.1:1\n");
  const source = new FileSource({ path, watch: false, clock: new ManualClock() });
  const seen: string[] = [];
  const sink = { snapshot: (m: readonly { name: string }[]) => seen.push(m.map((x) => x.name).join()), down: () => {} };
  await source.start(sink);
  await source.stop();
  await source.start(sink);
  await source.stop();
  t.deepEqual(seen, ["a", "a"]);
});
