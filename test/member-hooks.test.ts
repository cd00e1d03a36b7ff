/**
 * The sidecar's hand-off hooks against a real HTTP backend on loopback: what
 * reaches the backend, what counts as done, and when a step stops retrying.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { type HookCall, httpHooks } from "../src/membership/etcd/hooks.ts";
import { recordingLogger } from "./helpers/logger.ts";
import { until } from "./helpers/until.ts";

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: unknown;
}

async function backend(
  t: { teardown(fn: () => void): void },
  answer: (n: number, req: IncomingMessage, res: ServerResponse) => void,
) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        contentType: req.headers["content-type"],
        body: JSON.parse(text),
      });
      answer(seen.length, req, res);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const step = (version: number, signal = new AbortController().signal) => ({ version, signal });

test("a release POSTs {partition, rank, from, to, version} as JSON and is done on a 2xx", async (t) => {
  const { seen, url } = await backend(t, (_n, _req, res) => res.writeHead(204).end());
  const { logger } = recordingLogger();
  const hooks = httpHooks("web-1", { release: `${url}/release`, acquire: `${url}/acquire`, logger });
  await hooks.release?.(7, "web-2", 1, step(12));
  await hooks.acquire?.(3, null, 0, step(13));
  const expected: HookCall[] = [
    { partition: 7, rank: 1, from: "web-1", to: "web-2", version: 12 },
    { partition: 3, rank: 0, from: null, to: "web-1", version: 13 },
  ];
  t.deepEqual(
    seen.map((s) => [s.method, s.url, s.contentType, s.body]),
    [
      ["POST", "/release", "application/json", expected[0]],
      ["POST", "/acquire", "application/json", expected[1]],
    ],
  );
});

test("no hooks configured: no handlers, so each hand-off is done at once", (t) => {
  const { logger } = recordingLogger();
  t.deepEqual(httpHooks("web-1", { logger }), {});
});

test("a non-2xx answer and an attempt past the hook timeout are retried until a 2xx, each logged", async (t) => {
  const { seen, url } = await backend(t, (n, _req, res) => {
    if (n === 1) res.writeHead(500).end("flush failed");
    else if (n === 2)
      return; // never answers: the attempt times out
    else res.writeHead(200).end();
  });
  const { logger, entries } = recordingLogger();
  const hooks = httpHooks("web-1", { release: url, timeout: 300, retryMin: 10, retryMax: 20, logger });
  await hooks.release?.(1, "web-2", 0, step(2));
  t.is(seen.length, 3);
  const warnings = entries.filter((e) => e.msg === "release hook failed; retrying");
  t.is(warnings.length, 2);
  t.regex(warnings[0]?.problem, /answered 500: flush failed/);
  t.is(warnings[0]?.partition, 1);
});

test("a refused connection is retried; the step's signal ends the retries and the handler rejects", async (t) => {
  const { url } = await backend(t, (_n, _req, res) => res.writeHead(503).end());
  const { logger, entries } = recordingLogger();
  const controller = new AbortController();
  const hooks = httpHooks("web-1", { acquire: url, timeout: 1000, retryMin: 10, retryMax: 10, logger });
  const running = hooks.acquire?.(4, "web-2", 0, step(5, controller.signal));
  await until(() => entries.filter((e) => e.msg === "acquire hook failed; retrying").length >= 3, {
    what: "three failed attempts",
  });
  controller.abort("timeout");
  await t.throwsAsync(Promise.resolve(running));
  const attempts = entries.filter((e) => e.msg === "acquire hook failed; retrying").length;
  await new Promise((r) => setTimeout(r, 100));
  t.is(
    entries.filter((e) => e.msg === "acquire hook failed; retrying").length,
    attempts,
    "no attempt after the signal",
  );

  const refused = httpHooks("web-1", { acquire: "http://127.0.0.1:1/acquire", retryMin: 10, retryMax: 10, logger });
  const stop = new AbortController();
  const pending = refused.acquire?.(4, null, 0, step(5, stop.signal));
  await until(() => entries.some((e) => e.url === "http://127.0.0.1:1/acquire"), { what: "a refused attempt logged" });
  stop.abort("fenced");
  await t.throwsAsync(Promise.resolve(pending));
});
