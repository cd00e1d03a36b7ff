/**
 * gRPC's view of ringroute's own errors, as a table: which of ringroute's
 * errors becomes which grpc-status (the README's semantics table says the
 * same), how grpc-timeout reads, how grpc-message is escaped, which
 * content-types are gRPC calls. And the listener's HTTP/2 limits follow the
 * proxy config they are a function of.
 */
import test from "ava";
import { defaultConfig } from "../src/config.ts";
import { GrpcStatus, grpcMessage, grpcStatusOf, grpcTimeoutMs, isGrpc } from "../src/proxy/h2/grpc.ts";
import { h2Limits } from "../src/proxy/h2/limits.ts";

/** [ringroute's error code, its HTTP status, the gRPC status a gRPC client gets]. */
const table: [string, number, keyof typeof GrpcStatus][] = [
  ["no_members", 503, "UNAVAILABLE"],
  ["partition_moving", 503, "UNAVAILABLE"],
  ["upstream_unavailable", 502, "UNAVAILABLE"],
  ["bad_gateway", 502, "UNAVAILABLE"],
  ["body_not_replayable", 502, "UNAVAILABLE"],
  ["upstream_timeout", 504, "DEADLINE_EXCEEDED"],
  ["deadline_exceeded", 504, "DEADLINE_EXCEEDED"],
  ["queue_timeout", 503, "RESOURCE_EXHAUSTED"],
  ["missing_key", 400, "INVALID_ARGUMENT"],
  ["malformed_key", 400, "INVALID_ARGUMENT"],
  ["key_too_long", 431, "INVALID_ARGUMENT"],
  ["key_too_long", 414, "INVALID_ARGUMENT"],
  ["bad_path", 400, "INVALID_ARGUMENT"],
  ["bad_request", 400, "INVALID_ARGUMENT"],
  ["request_timeout", 408, "DEADLINE_EXCEEDED"],
  ["method_not_allowed", 405, "UNIMPLEMENTED"],
  ["internal_error", 500, "INTERNAL"],
  // Codes it does not know fall back to gRPC's HTTP mapping (grpc/doc/http-grpc-status-mapping.md).
  ["something_else", 400, "INTERNAL"],
  ["something_else", 401, "UNAUTHENTICATED"],
  ["something_else", 403, "PERMISSION_DENIED"],
  ["something_else", 404, "UNIMPLEMENTED"],
  ["something_else", 429, "UNAVAILABLE"],
  ["something_else", 502, "UNAVAILABLE"],
  ["something_else", 503, "UNAVAILABLE"],
  ["something_else", 504, "UNAVAILABLE"],
  ["something_else", 500, "UNKNOWN"],
];

for (const [error, status, name] of table) {
  test(`${error} (${status}) → ${name}`, (t) => {
    t.is(grpcStatusOf(error, status), GrpcStatus[name]);
  });
}

test("the numbers are gRPC's", (t) => {
  t.deepEqual(
    [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.RESOURCE_EXHAUSTED, GrpcStatus.UNAVAILABLE],
    [3, 4, 8, 14],
  );
});

test("grpc-timeout: 1 to 8 digits and a unit, in milliseconds rounded up; anything else is no deadline", (t) => {
  const cases: [string | undefined, number | undefined][] = [
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["3S", 3000],
    ["250m", 250],
    ["1500u", 2],
    ["1n", 1],
    ["0m", 0],
    ["99999999S", 99_999_999_000],
    ["123456789S", undefined],
    ["5", undefined],
    ["S", undefined],
    ["-1S", undefined],
    ["1.5S", undefined],
    ["1s", undefined],
    [" 1S", undefined],
    [undefined, undefined],
  ];
  for (const [value, ms] of cases) t.is(grpcTimeoutMs(value), ms, String(value));
});

test("grpc-message is percent-encoded UTF-8: printable ASCII but % as is", (t) => {
  t.is(grpcMessage('no key: looked in header "x"'), 'no key: looked in header "x"');
  t.is(grpcMessage("100% ok"), "100%25 ok");
  t.is(grpcMessage("line\nnext"), "line%0Anext");
  t.is(grpcMessage("clé"), "cl%C3%A9");
});

test("application/grpc and its +format and ;params forms are gRPC; grpc-web and others are not", (t) => {
  for (const type of ["application/grpc", "application/grpc+proto", "Application/GRPC+json", "application/grpc;x=1"])
    t.true(isGrpc(type), type);
  for (const type of [undefined, "application/grpc-web", "application/grpc-web+proto", "application/json", "grpc"])
    t.false(isGrpc(type), String(type));
});

test("the h2 limits follow proxy.limits and timeouts: the same head as HTTP/1.1, the same idle time", (t) => {
  const config = defaultConfig().proxy;
  const limits = h2Limits(config);
  t.is(limits.settings.maxConcurrentStreams, 100);
  t.is(limits.settings.enablePush, false);
  // 100 fields and 16 KiB as HTTP/1.1, with RFC 9113's 32 bytes a field (4 pseudo-headers more).
  t.is(limits.settings.maxHeaderListSize, 16_384 + 32 * 104);
  t.is(limits.server.maxHeaderListPairs, 104);
  t.is(limits.idleMs, config.timeouts.clientIdle);
  config.limits.headers = 20;
  config.limits.headerBytes = 4096;
  config.timeouts.clientIdle = 1000;
  const tighter = h2Limits(config);
  t.is(tighter.settings.maxHeaderListSize, 4096 + 32 * 24);
  t.is(tighter.server.maxHeaderListPairs, 24);
  t.is(tighter.idleMs, 1000);
});
