/**
 * A member's protocol in a running `serve`, one process and workers: a
 * change of it under the same name and URL reaches every process, which
 * closes the connections it kept to the member and speaks the new protocol
 * from then on; /ring shows it.
 */
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ring } from "../src/ring/ring.ts";
import { send } from "./helpers/backends.ts";
import { type DualMember, startDualMember } from "./helpers/dual-member.ts";
import { sendAs } from "./helpers/h2.ts";
import { inEachShape, serve } from "./helpers/shapes.ts";
import { until } from "./helpers/until.ts";

/** Writes the members file (atomically): each member with the protocol given, or none. */
function membersFile(dir: string) {
  const file = join(dir, "members.yaml");
  return {
    file,
    write(list: { name: string; url: string; protocol?: "h1" | "h2c" }[]) {
      writeFileSync(`${file}.tmp`, JSON.stringify({ members: list }));
      renameSync(`${file}.tmp`, file);
    },
  };
}

const open = (member: DualMember) => [...member.connections].filter(([, c]) => c.open).map(([id]) => id);

inEachShape("a member's protocol change closes the connections every process kept to it", async (t, shape) => {
  const a = await startDualMember("a");
  const b = await startDualMember("b");
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const dir = mkdtempSync(join(tmpdir(), "ringroute-protocol-"));
  const members = membersFile(dir);
  members.write([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
  ]);
  writeFileSync(
    join(dir, "ringroute.yaml"),
    // Idle member connections are kept for 10 minutes: only the change can close them within the test.
    `membership:\n  file:\n    path: ${members.file}\n    pollInterval: 100ms\n    settle: 50ms\n` +
      "proxy:\n  timeouts:\n    keepAlive: 10m\n",
  );
  const running = await serve(t, shape, ["--config", join(dir, "ringroute.yaml")]);
  const ring = Ring.build(["a", "b"]);
  const keys = Array.from({ length: 60 }, (_, i) => `/users/${i}`);
  // Separate client connections, so with workers both processes get some and keep connections to a and b.
  for (const key of keys) {
    const reply = await send(running.proxy, key);
    t.is(reply.json.backend, ring.ownerOf(key));
    t.is(reply.json.protocol, "http/1.1");
  }
  const kept = open(b);
  t.true(kept.length > 0, "the proxy keeps its connections to b open between requests");
  const ringBefore = (await send(running.admin, "/ring?table=false")).json;
  t.deepEqual(
    ringBefore.members.map((m: { name: string; protocol: string }) => [m.name, m.protocol]),
    [
      ["a", "h1"],
      ["b", "h1"],
    ],
  );

  // Only b's protocol changes: its connections close without another request; a's stay.
  const keptByA = open(a);
  t.true(keptByA.length > 0);
  members.write([
    { name: "a", url: a.url, protocol: "h1" },
    { name: "b", url: b.url, protocol: "h2c" },
  ]);
  await until(() => kept.every((id) => b.connections.get(id)?.open === false), {
    what: `b's connections ${kept.join(", ")} closed by the proxy after its protocol changed`,
  });
  const ringAfter = (await send(running.admin, "/ring?table=false")).json;
  t.is(ringAfter.checksum, ringBefore.checksum, "the same ring");
  t.deepEqual(
    ringAfter.members.map((m: { name: string; protocol: string }) => [m.name, m.protocol]),
    [
      ["a", "h1"],
      ["b", "h2c"],
    ],
  );
  if (shape.workers > 1) {
    for (const w of ringAfter.workers) t.is(w.version, ringAfter.routingVersion, "every worker on the new record");
  }
  // a said h1 out loud this time: the same as saying nothing, so its connections were left alone.
  t.deepEqual(
    keptByA.filter((id) => a.connections.get(id)?.open === false),
    [],
  );

  // b is spoken to over h2c now (an h2 client's streams, multiplexed on a new connection)...
  const bKeys = keys.filter((k) => ring.ownerOf(k) === "b");
  for (const key of bKeys.slice(0, 6)) {
    const reply = await sendAs("h2", running.proxy, key);
    t.is(reply.status, 200);
    t.is(reply.json.protocol, "h2");
    t.false(kept.includes(reply.json.connection), "a new connection");
  }
  const sessions = open(b);
  t.true(sessions.length > 0);
  // ...and back to HTTP/1.1: the h2c sessions close too, and HTTP/1.1 reaches b again.
  members.write([
    { name: "a", url: a.url },
    { name: "b", url: b.url },
  ]);
  await until(() => sessions.every((id) => b.connections.get(id)?.open === false), {
    what: `b's h2c sessions ${sessions.join(", ")} closed by the proxy after its protocol changed back`,
  });
  for (const key of bKeys.slice(0, 3)) t.is((await send(running.proxy, key)).json.protocol, "http/1.1");
});
