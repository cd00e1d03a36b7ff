import { mkdtemp, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Cluster } from "../src/cluster.ts";
import { ConfigError } from "../src/errors/config-error.ts";
import { parseMembershipConfig } from "../src/membership/config.ts";
import { FileSource, parseMembersFile } from "../src/membership/file.ts";
import { createSource } from "../src/membership/index.ts";

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

/** A temp directory with a members file, and a cluster watching it. */
async function watched(t: { teardown(fn: () => Promise<void>): void }, text: string | undefined, options = {}) {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-file-"));
  const path = join(dir, "members.txt");
  if (text !== undefined) await writeFile(path, text);
  const lines: string[] = [];
  const source = new FileSource({ path, log: (l) => lines.push(l), ...options });
  const cluster = new Cluster({ source, ring: { partitions: 16, replicas: 2 } });
  const errors: string[] = [];
  const rings: string[] = [];
  cluster.listen({ sourceError: (e) => errors.push(e.message), ring: (r) => rings.push(r.members.join(",")) });
  t.teardown(async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await cluster.start();
  return { dir, path, cluster, lines, errors, rings };
}

function nextRing(cluster: Cluster): Promise<string> {
  return new Promise((resolve) => {
    const off = cluster.listen({
      ring: (ring) => {
        off();
        resolve(ring.members.join(","));
      },
    });
  });
}

function nextSource(cluster: Cluster): Promise<boolean> {
  return new Promise((resolve) => {
    const off = cluster.listen({
      source: (up) => {
        off();
        resolve(up);
      },
    });
  });
}

test("the file's members are in the ring once start resolves, and an edit moves the ring", async (t) => {
  const { path, cluster } = await watched(t, "a http://127.0.0.1:1\nb http://127.0.0.1:2\n");
  t.true(cluster.synced);
  t.deepEqual(cluster.ring.members, ["a", "b"]);
  const changed = nextRing(cluster);
  await writeFile(path, "a http://127.0.0.1:1\nb http://127.0.0.1:2\nc http://127.0.0.1:3\n");
  t.is(await changed, "a,b,c");
  t.is(cluster.member("c")?.url, "http://127.0.0.1:3");
});

test("a file replaced by rename (how editors and config tools write) is picked up", async (t) => {
  const { dir, path, cluster } = await watched(t, "a http://127.0.0.1:1\n");
  const changed = nextRing(cluster);
  const staged = join(dir, ".members.txt.new");
  await writeFile(staged, "z http://127.0.0.1:9\n");
  await rename(staged, path);
  t.is(await changed, "z");
});

test("polling alone picks up a change when file events are not available", async (t) => {
  const { path, cluster } = await watched(t, "a http://127.0.0.1:1\n", { watch: false, pollInterval: 50 });
  const changed = nextRing(cluster);
  await writeFile(path, "a http://127.0.0.1:1\nb http://127.0.0.1:2\n");
  t.is(await changed, "a,b");
});

test("a file that stops parsing keeps the last good view, logs one line and counts one error", async (t) => {
  const { path, cluster, lines, errors, rings } = await watched(t, "a http://127.0.0.1:1\nb http://127.0.0.1:2\n");
  const ring = cluster.ring;
  const down = nextSource(cluster);
  await writeFile(path, "a http://127.0.0.1:1\nb\n");
  t.false(await down);
  // Give the watcher and the poller time to look again: the same bad file is not reported twice.
  await new Promise((resolve) => setTimeout(resolve, 1200));
  t.is(cluster.ring, ring);
  t.true(cluster.synced);
  t.is(lines.length, 1);
  t.regex(lines[0] ?? "", /members\.txt:2: expected "name url", got "b"; keeping the last good member list$/);
  t.is(errors.length, 1);
  const up = nextSource(cluster);
  await writeFile(path, "b http://127.0.0.1:2\n");
  t.true(await up);
  t.deepEqual(cluster.ring.members, ["b"]);
  t.deepEqual(rings, ["a,b", "b"]);
});

test("an emptied file is taken for a write in progress, not for 'remove everyone'", async (t) => {
  const { path, cluster, lines } = await watched(t, "a http://127.0.0.1:1\n");
  const down = nextSource(cluster);
  await writeFile(path, "");
  t.false(await down);
  t.deepEqual(cluster.ring.members, ["a"]);
  t.regex(lines[0] ?? "", /lists no members/);
});

test("a deleted file keeps the last view; the same content restored brings the source back up", async (t) => {
  const text = "a http://127.0.0.1:1\n";
  const { path, cluster, rings } = await watched(t, text);
  const down = nextSource(cluster);
  await unlink(path);
  t.false(await down);
  t.false(cluster.sourceUp);
  const up = nextSource(cluster);
  await writeFile(path, text);
  t.true(await up);
  t.deepEqual(rings, ["a"]);
});

test("a file missing at start leaves the cluster unsynced until it appears", async (t) => {
  const { path, cluster, lines } = await watched(t, undefined);
  t.false(cluster.synced);
  t.regex(lines[0] ?? "", /members\.txt: cannot read \(ENOENT\)/);
  const changed = nextRing(cluster);
  await writeFile(path, "a http://127.0.0.1:1\n");
  t.is(await changed, "a");
  t.true(cluster.synced);
});

test("membership.file in config builds a watching file source", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-file-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "members.yaml");
  await writeFile(path, "members:\n  - {name: a, url: 'http://127.0.0.1:1'}\n");
  const source = createSource(parseMembershipConfig({ file: { path } }));
  t.is(source.kind, "file");
  const cluster = new Cluster({ source });
  await cluster.start();
  t.deepEqual(cluster.ring.members, ["a"]);
  await cluster.stop();
});
