import test from "ava";
import { defaultConfig, type ProxyConfig } from "../src/config.ts";
import { type BodyState, decide, type Outcome, type RetryInput, retryPolicy } from "../src/proxy/retry.ts";

/** The default `proxy.retry`: 2 further members, on connect failure, reset, 502 and 503; idempotent methods. */
const defaults = retryPolicy(defaultConfig().proxy.retry);

function input(outcome: Outcome, over: Partial<Omit<RetryInput, "outcome">> = {}): RetryInput {
  return { outcome, method: "GET", body: "none", tried: 1, responseStarted: false, ...over };
}

const connect: Outcome = { kind: "connect" };
const reset: Outcome = { kind: "reset" };
const timeout: Outcome = { kind: "timeout" };
const error: Outcome = { kind: "error" };
const badResponse: Outcome = { kind: "bad_response" };
const status = (s: number): Outcome => ({ kind: "status", status: s });

const retryThenForward = { action: "retry", otherwise: { action: "forward" } };
const unavailable = { action: "reply", status: 502, error: "upstream_unavailable" };
const badGateway = { action: "reply", status: 502, error: "bad_gateway" };
const gatewayTimeout = { action: "reply", status: 504, error: "upstream_timeout" };
const notReplayable = { action: "reply", status: 502, error: "body_not_replayable" };

/** [what, input, expected decision (a subset: t.like)] under the default policy. */
const table: [string, RetryInput, Record<string, unknown>][] = [
  // Connect failures: the member saw nothing, so every method moves on.
  ["connect failure, GET", input(connect), { action: "retry", otherwise: unavailable, reason: "connect", eject: true }],
  ["connect failure, POST without body", input(connect, { method: "POST" }), { action: "retry", reason: "connect" }],
  ["connect failure, POST, body unread", input(connect, { method: "POST", body: "unsent" }), { action: "retry" }],
  ["connect failure, PATCH", input(connect, { method: "PATCH" }), { action: "retry" }],
  ["connect failure, body already sent", input(connect, { body: "sent" }), { ...notReplayable, eject: true }],
  ["connect failure, body sent but kept", input(connect, { body: "replayable" }), { action: "retry" }],
  ["connect failure, budget spent (3 tried)", input(connect, { tried: 3 }), { ...unavailable, eject: true }],
  ["connect failure, 2 tried of 1 + 2", input(connect, { tried: 2 }), { action: "retry" }],

  // Resets before the response: only retry.methods move on.
  ["reset, GET", input(reset), { action: "retry", otherwise: badGateway, reason: "reset", eject: true }],
  ["reset, PUT", input(reset, { method: "PUT" }), { action: "retry" }],
  ["reset, DELETE", input(reset, { method: "DELETE" }), { action: "retry" }],
  ["reset, HEAD", input(reset, { method: "HEAD" }), { action: "retry" }],
  ["reset, OPTIONS", input(reset, { method: "OPTIONS" }), { action: "retry" }],
  ["reset, POST", input(reset, { method: "POST" }), { ...badGateway, reason: "reset", eject: true }],
  ["reset, PATCH", input(reset, { method: "PATCH" }), badGateway],
  ["reset, PUT with its body sent", input(reset, { method: "PUT", body: "sent" }), notReplayable],
  ["reset, POST with its body sent", input(reset, { method: "POST", body: "sent" }), badGateway],
  ["reset, POST with its body kept", input(reset, { method: "POST", body: "replayable" }), badGateway],
  ["reset, PUT with its body unread", input(reset, { method: "PUT", body: "unsent" }), { action: "retry" }],
  ["reset, PUT with its body kept", input(reset, { method: "PUT", body: "replayable" }), { action: "retry" }],
  ["reset, budget spent", input(reset, { tried: 3 }), badGateway],

  // After the response started nothing can replace it; the member still failed.
  ["reset after the response started", input(reset, { responseStarted: true }), { action: "cut", eject: true }],
  ["timeout after the response started", input(timeout, { responseStarted: true }), { action: "cut", eject: true }],
  ["error after the response started", input(error, { responseStarted: true }), { action: "cut", reason: "error" }],
  [
    "bad response after the response started",
    input(badResponse, { responseStarted: true }),
    { action: "cut", reason: "bad_response", eject: false },
  ],

  // (b): a reused connection that failed before any response byte. Idempotent methods move on; any method
  // does when the member closed the connection before the whole request was written (it saw no request).
  ["reset on a reused connection, GET", input(reset, { reused: true }), { action: "retry", reason: "reset" }],
  [
    "reset on a reused connection closed before the request was written, POST",
    input(reset, { method: "POST", reused: true, closedEarly: true }),
    { action: "retry", otherwise: badGateway, reason: "reset", eject: true },
  ],
  [
    "the same, POST with its body kept",
    input(reset, { method: "POST", body: "replayable", reused: true, closedEarly: true }),
    { action: "retry" },
  ],
  [
    "the same, POST with its body partly sent",
    input(reset, { method: "POST", body: "sent", reused: true, closedEarly: true }),
    notReplayable,
  ],
  [
    "reset on a reused connection after the request was written, POST",
    input(reset, { method: "POST", reused: true }),
    badGateway,
  ],
  [
    "reset on a reused connection after a response byte, POST",
    input(reset, { method: "POST", reused: true, closedEarly: true, responseBytes: true }),
    badGateway,
  ],
  [
    "reset on a fresh connection closed early, POST (not reused: not (b))",
    input(reset, { method: "POST", closedEarly: true }),
    badGateway,
  ],

  // Timeouts are not in the default retry.on.
  ["timeout, GET (not retried by default)", input(timeout), { ...gatewayTimeout, reason: "timeout", eject: true }],
  ["timeout, body sent (not retried by default)", input(timeout, { body: "sent" }), gatewayTimeout],

  // A socket error on an established connection (EHOSTUNREACH…) is (c): idempotent methods only, never as (a).
  ["error, GET", input(error), { action: "retry", reason: "error", eject: true }],
  ["error, POST", input(error, { method: "POST" }), { ...badGateway, reason: "error", eject: true }],
  ["error, POST without body", input(error, { method: "POST", body: "none" }), badGateway],

  // A response that does not parse is neither retried nor counted against the member.
  ["bad response, GET", input(badResponse), { ...badGateway, reason: "bad_response", eject: false }],

  // Statuses: listed ones move retry.methods on; otherwise the member's response goes through.
  ["503, GET", input(status(503)), { ...retryThenForward, reason: "status", eject: true }],
  ["502, GET", input(status(502)), retryThenForward],
  ["500, GET (not listed)", input(status(500)), { action: "forward", reason: undefined, eject: false }],
  ["504, GET (not listed)", input(status(504)), { action: "forward", eject: false }],
  ["200, GET", input(status(200)), { action: "forward", reason: undefined, eject: false }],
  ["404, GET", input(status(404)), { action: "forward", eject: false }],
  ["503, POST", input(status(503), { method: "POST" }), { action: "forward", reason: "status", eject: true }],
  ["503, PUT with its body sent", input(status(503), { method: "PUT", body: "sent" }), { action: "forward" }],
  ["503, PUT with its body kept", input(status(503), { method: "PUT", body: "replayable" }), retryThenForward],
  ["503, budget spent", input(status(503), { tried: 3 }), { action: "forward", eject: true }],
];

for (const [what, given, expected] of table) {
  test(`default policy: ${what}`, (t) => {
    t.like(decide(defaults, given), expected);
  });
}

test("every reply ringroute makes has a JSON error code and a message without addresses or errnos", (t) => {
  const bodies: BodyState[] = ["none", "unsent", "sent", "replayable"];
  const outcomes: Outcome[] = [connect, reset, timeout, error, badResponse, status(502), status(503)];
  for (const outcome of outcomes) {
    for (const body of bodies) {
      for (const tried of [1, 2, 3, 4]) {
        for (const method of ["GET", "POST"]) {
          const d = decide(defaults, input(outcome, { body, tried, method }));
          const replyOf = d.action === "retry" ? d.otherwise : d;
          if (replyOf.action !== "reply") continue;
          t.regex(replyOf.error, /^[a-z_]+$/);
          t.true(replyOf.status >= 400 && replyOf.status < 600);
          t.notRegex(replyOf.message, /\d+\.\d+\.\d+\.\d+|E[A-Z]{4,}|:\d{2,5}/);
        }
      }
    }
  }
});

test("a retry's fallback is the decision the exhausted budget gives", (t) => {
  for (const outcome of [connect, reset, status(503)]) {
    const first = decide(defaults, input(outcome));
    const last = decide(defaults, input(outcome, { tried: 3 }));
    t.is(first.action, "retry");
    if (first.action !== "retry") continue;
    t.like(last, first.otherwise);
  }
});

function policy(change: (retry: ProxyConfig["retry"]) => void) {
  const retry = structuredClone(defaultConfig().proxy.retry);
  change(retry);
  return retryPolicy(retry);
}

test("retry.attempts 0: no failover at all", (t) => {
  const p = policy((r) => (r.attempts = 0));
  t.like(decide(p, input(connect)), unavailable);
  t.like(decide(p, input(reset)), badGateway);
  t.like(decide(p, input(status(503))), { action: "forward", eject: true });
});

test("retry.attempts N allows N further members", (t) => {
  const p = policy((r) => (r.attempts = 5));
  for (let tried = 1; tried <= 5; tried++) t.is(decide(p, input(reset, { tried })).action, "retry", `tried ${tried}`);
  t.like(decide(p, input(reset, { tried: 6 })), badGateway);
});

test("retry.on with timeout retries timeouts of retry.methods", (t) => {
  const p = policy((r) => r.on.push("timeout"));
  t.like(decide(p, input(timeout)), { action: "retry", otherwise: gatewayTimeout, reason: "timeout" });
  t.like(decide(p, input(timeout, { method: "POST" })), gatewayTimeout);
  t.like(decide(p, input(timeout, { method: "PUT", body: "sent" })), notReplayable);
});

test("retry.on without connect-failure or reset: those failures are answered, still counted for ejection", (t) => {
  const p = policy((r) => (r.on = [503]));
  t.like(decide(p, input(connect)), { ...unavailable, reason: "connect", eject: true });
  t.like(decide(p, input(reset)), { ...badGateway, reason: "reset", eject: true });
  // With nothing retried there is nothing the spent body prevents: the failure itself is reported.
  t.like(decide(p, input(reset, { body: "sent" })), badGateway);
  t.like(decide(p, input(status(503))), retryThenForward);
  t.like(decide(p, input(status(502))), { action: "forward", reason: undefined, eject: false });
});

test("retry.on with other statuses: 429 and 500 move on, 503 no longer does", (t) => {
  const p = policy((r) => (r.on = ["connect-failure", 429, 500]));
  t.like(decide(p, input(status(429))), retryThenForward);
  t.like(decide(p, input(status(500))), retryThenForward);
  t.like(decide(p, input(status(503))), { action: "forward", eject: false });
});

test("retry.methods decides for resets and statuses but not for connect failures", (t) => {
  const p = policy((r) => (r.methods = ["POST"]));
  t.is(decide(p, input(reset, { method: "POST" })).action, "retry");
  t.like(decide(p, input(reset, { method: "GET" })), badGateway);
  t.is(decide(p, input(status(503), { method: "POST" })).action, "retry");
  t.is(decide(p, input(status(503), { method: "GET" })).action, "forward");
  t.is(decide(p, input(connect, { method: "GET" })).action, "retry");
  t.is(decide(p, input(connect, { method: "DELETE" })).action, "retry");
});

test("over every input: a request is resent only under rule (a), (b) or (c), with its body at hand", (t) => {
  const outcomes: Outcome[] = [connect, reset, timeout, error, badResponse, status(502), status(503), status(200)];
  const bodies: BodyState[] = ["none", "unsent", "sent", "replayable"];
  const flags = [false, true];
  let checked = 0;
  for (const outcome of outcomes)
    for (const method of ["GET", "PUT", "POST", "PATCH"])
      for (const body of bodies)
        for (const tried of [1, 2, 3])
          for (const responseStarted of flags)
            for (const reused of flags)
              for (const responseBytes of flags)
                for (const closedEarly of flags) {
                  const given = { outcome, method, body, tried, responseStarted, reused, responseBytes, closedEarly };
                  const idempotent = ["GET", "PUT"].includes(method);
                  const allowed =
                    outcome.kind === "connect" ||
                    (reused && !responseBytes && (idempotent || closedEarly)) ||
                    (idempotent && !responseStarted);
                  const d = decide(defaults, given);
                  if (d.action === "retry") {
                    t.true(allowed, JSON.stringify(given));
                    t.not(body, "sent", JSON.stringify(given));
                    t.true(tried <= 2, JSON.stringify(given));
                  }
                  checked++;
                }
  t.is(checked, 8 * 4 * 4 * 3 * 16);
});

// HTTP/2 members: a refused stream (REFUSED_STREAM, or above the last stream id of a GOAWAY) was never processed.
const refused: Outcome = { kind: "refused" };
const refusedOtherwise = { action: "reply", status: 502, error: "upstream_unavailable" };
const refusedReply = { ...refusedOtherwise, reason: "refused", eject: false };

/** gRPC calls: POST, the method path as `grpcMethod`, the body kept (a unary request is whole before it is sent). */
function call(outcome: Outcome, over: Partial<Omit<RetryInput, "outcome">> = {}): RetryInput {
  return input(outcome, { method: "POST", body: "replayable", grpcMethod: "/kv.Store/Put", ...over });
}

const withGrpc = policy((r) => (r.grpcMethods = ["/kv.Store/Get", "/kv.Reader/*"]));

/** [what, policy, input, expected decision (a subset: t.like)]. */
const grpcTable: [string, typeof defaults, RetryInput, Record<string, unknown>][] = [
  // Never processed: any method, gRPC or not, moves on, and the member is not held to account.
  [
    "refused stream, POST",
    defaults,
    input(refused, { method: "POST" }),
    { action: "retry", otherwise: refusedOtherwise },
  ],
  [
    "refused stream, POST, body kept",
    defaults,
    input(refused, { method: "POST", body: "replayable" }),
    { action: "retry" },
  ],
  ["refused stream, body partly sent", defaults, input(refused, { body: "sent" }), { ...notReplayable, eject: false }],
  ["refused stream, budget spent", defaults, input(refused, { tried: 3 }), refusedReply],
  ["refused after the response started", defaults, input(refused, { responseStarted: true }), { action: "cut" }],
  ["refused, gRPC call (not listed)", defaults, call(refused), { action: "retry", reason: "refused", eject: false }],
  ["connect failure, gRPC call (not listed)", defaults, call(connect), { action: "retry", reason: "connect" }],
  ["refused, retry.on without connect-failure", policy((r) => (r.on = [503])), call(refused), refusedReply],

  // May have been processed: a gRPC call is not resent unless its method is listed (default: none).
  ["reset, gRPC call, default policy", defaults, call(reset), { ...badGateway, reason: "reset", eject: true }],
  ["reset, gRPC call on a reused session", defaults, call(reset, { reused: true }), badGateway],
  ["reset, gRPC call, closed early", defaults, call(reset, { reused: true, closedEarly: true }), badGateway],
  ["error, gRPC call", defaults, call(error), badGateway],
  [
    "reset, gRPC call whose HTTP method is in retry.methods (POST listed)",
    policy((r) => r.methods.push("POST")),
    call(reset),
    badGateway,
  ],
  ["reset, listed gRPC method", withGrpc, call(reset, { grpcMethod: "/kv.Store/Get" }), { action: "retry" }],
  ["reset, method of a listed service", withGrpc, call(reset, { grpcMethod: "/kv.Reader/Scan" }), { action: "retry" }],
  [
    "reset, another method of that service's package",
    withGrpc,
    call(reset, { grpcMethod: "/kv.Store/Put" }),
    badGateway,
  ],
  [
    "reset, a service whose name extends a listed one",
    withGrpc,
    call(reset, { grpcMethod: "/kv.ReaderX/Scan" }),
    badGateway,
  ],
  [
    "reset, listed gRPC method, response headers came back",
    withGrpc,
    call(reset, { grpcMethod: "/kv.Store/Get", responseBytes: true }),
    badGateway,
  ],
  [
    "reset, listed gRPC method, response started",
    withGrpc,
    call(reset, { grpcMethod: "/kv.Store/Get", responseStarted: true }),
    { action: "cut" },
  ],
  [
    "reset, listed gRPC method, request stream partly sent",
    withGrpc,
    call(reset, { grpcMethod: "/kv.Store/Get", body: "sent" }),
    notReplayable,
  ],
  [
    "503 from a member, listed gRPC method: the response headers committed the call",
    withGrpc,
    call(status(503), { grpcMethod: "/kv.Store/Get" }),
    { action: "forward", reason: "status", eject: true },
  ],
  [
    "timeout, listed gRPC method, timeout not in retry.on",
    withGrpc,
    call(timeout, { grpcMethod: "/kv.Store/Get" }),
    gatewayTimeout,
  ],
];

for (const [what, p, given, expected] of grpcTable) {
  test(`HTTP/2 and gRPC: ${what}`, (t) => {
    t.like(decide(p, given), expected);
  });
}

test("over every gRPC input: a call is resent only if unprocessed, or listed and without response headers", (t) => {
  const outcomes: Outcome[] = [connect, refused, reset, timeout, error, badResponse, status(502), status(503)];
  const bodies: BodyState[] = ["none", "unsent", "sent", "replayable"];
  const flags = [false, true];
  const p = policy((r) => {
    r.on.push("timeout");
    r.grpcMethods = ["/kv.Store/Get"];
  });
  let checked = 0;
  for (const outcome of outcomes)
    for (const grpcMethod of ["/kv.Store/Get", "/kv.Store/Put"])
      for (const body of bodies)
        for (const tried of [1, 2, 3])
          for (const responseStarted of flags)
            for (const reused of flags)
              for (const responseBytes of flags) {
                const given = {
                  outcome,
                  method: "POST",
                  grpcMethod,
                  body,
                  tried,
                  responseStarted,
                  reused,
                  responseBytes,
                };
                const unprocessed = outcome.kind === "connect" || outcome.kind === "refused";
                const listed =
                  grpcMethod === "/kv.Store/Get" && outcome.kind !== "status" && !responseBytes && !responseStarted;
                const d = decide(p, given);
                if (d.action === "retry") {
                  t.true(unprocessed || listed, JSON.stringify(given));
                  t.not(body, "sent", JSON.stringify(given));
                  t.true(tried <= 2, JSON.stringify(given));
                  t.false(responseStarted, JSON.stringify(given));
                } else if (!responseStarted && body !== "sent" && tried <= 2 && outcome.kind !== "bad_response") {
                  t.false(unprocessed || listed, `not resent: ${JSON.stringify(given)}`);
                }
                checked++;
              }
  t.is(checked, 8 * 2 * 4 * 3 * 8);
});
