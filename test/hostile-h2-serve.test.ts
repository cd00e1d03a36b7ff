/**
 * Hostile HTTP/2 clients through `serve` itself, in both shapes (one
 * process, and workers that get their connections from the primary): the
 * full suite (hostile-h2.test.ts) runs the engine in-process on a manual
 * clock; these show that `serve`'s listener, in either shape, has the same
 * limits.
 */
import type { ExecutionContext } from "ava";
import { defaultConfig } from "../src/config.ts";
import { type Serving, startServing } from "../src/serving/index.ts";
import { closeSession, request as h2request, session } from "./helpers/h2.ts";
import { ErrorCode, errorName, RawH2Client, request, rstStream, Setting, settings } from "./helpers/h2frames.ts";
import { RecordingBackend } from "./helpers/raw.ts";
import { inEachShape, type Shape } from "./helpers/shapes.ts";
import { until } from "./helpers/until.ts";

async function serveOne(t: ExecutionContext, shape: Shape): Promise<{ serving: Serving; member: RecordingBackend }> {
  const member = await RecordingBackend.start("solo");
  t.teardown(() => member.close());
  const defaults = defaultConfig();
  const serving = await startServing({
    ...defaults,
    listen: { host: "127.0.0.1", port: 0 },
    admin: { host: "127.0.0.1", port: 0 },
    workers: shape.workers,
    access: { log: false, sample: 1 },
    log: { level: "warn", format: "json" },
    membership: { static: { members: [{ name: "solo", url: member.url }] } },
  });
  t.teardown(() => serving.close());
  return { serving, member };
}

/** A well-behaved h2 client on its own connection: one GET, answered by the member. */
async function served(t: ExecutionContext, port: number, path: string): Promise<void> {
  const client = await session(`http://127.0.0.1:${port}`);
  try {
    const reply = await h2request(client, path);
    t.is(reply.status, 200);
    t.is(reply.text, `solo GET ${path}`);
  } finally {
    await closeSession(client);
  }
}

inEachShape(
  "through serve: a rapid-reset client gets GOAWAY ENHANCE_YOUR_CALM and is closed; another client is served",
  async (t, shape) => {
    const { serving, member } = await serveOne(t, shape);
    const attacker = await RawH2Client.connect(serving.proxy.port);
    t.teardown(() => attacker.close());
    let id = 1;
    for (let batch = 0; batch < 20 && !attacker.raw.ended; batch++) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 50; i++, id += 2) frames.push(request(id, `/rr/${id}`), rstStream(id, ErrorCode.CANCEL));
      await attacker.sendSynced(...frames);
    }
    const goaway = await attacker.waitForGoaway("GOAWAY for the rapid resets");
    t.is(errorName(goaway.code), "ENHANCE_YOUR_CALM");
    await attacker.waitForClose();
    t.true(member.requests.length <= 300, `${member.requests.length} cancelled requests reached the member`);
    await served(t, serving.proxy.port, "/after");
    await until(
      () => member.connections.filter((c) => c.requests.some((r) => r.url.startsWith("/rr/"))).every((c) => c.closed),
      {
        what: "every member connection a cancelled request used to be closed",
      },
    );
  },
);

inEachShape(
  "through serve: a SETTINGS flood ends the attacker's connection; nothing reaches the member; another client is served",
  async (t, shape) => {
    const { serving, member } = await serveOne(t, shape);
    const attacker = await RawH2Client.connect(serving.proxy.port);
    t.teardown(() => attacker.close());
    await attacker.send(...Array.from({ length: 10_000 }, () => settings([[Setting.MAX_CONCURRENT_STREAMS, 100]])));
    await attacker.waitForClose("the flooding connection to close");
    t.is(member.requests.length, 0);
    await served(t, serving.proxy.port, "/after");
  },
);
