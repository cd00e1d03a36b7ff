/**
 * gRPC's view of ringroute's own errors. A gRPC client reads the outcome of
 * a call from `grpc-status` in trailers, not from the HTTP status or a JSON
 * body, so a call ringroute answers itself gets a trailers-only response
 * (`:status 200`, `content-type: application/grpc`, `grpc-status`,
 * `grpc-message`). Pure functions: the mapping is a table, tested as one.
 *
 * Codes: https://grpc.github.io/grpc/core/md_doc_statuscodes.html; the
 * HTTP fallback follows doc/http-grpc-status-mapping.md of grpc/grpc.
 */

/** The gRPC status codes ringroute answers with. */
export const GrpcStatus = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** Each of ringroute's error codes (the JSON `error` of HTTP clients), as a gRPC status. */
const byError: Readonly<Record<string, number>> = {
  // Nobody to send the call to now, or the member could not answer: a client may try again (UNAVAILABLE).
  no_members: GrpcStatus.UNAVAILABLE,
  partition_moving: GrpcStatus.UNAVAILABLE,
  upstream_unavailable: GrpcStatus.UNAVAILABLE,
  bad_gateway: GrpcStatus.UNAVAILABLE,
  body_not_replayable: GrpcStatus.UNAVAILABLE,
  // The call's deadline (grpc-timeout) or the member's response timeout.
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  upstream_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  // Every connection to the member stayed busy for proxy.timeouts.queue.
  queue_timeout: GrpcStatus.RESOURCE_EXHAUSTED,
  // The call cannot be routed as sent: no key, a key that does not decode or is too long, a bad path.
  missing_key: GrpcStatus.INVALID_ARGUMENT,
  malformed_key: GrpcStatus.INVALID_ARGUMENT,
  key_too_long: GrpcStatus.INVALID_ARGUMENT,
  bad_path: GrpcStatus.INVALID_ARGUMENT,
  bad_request: GrpcStatus.INVALID_ARGUMENT,
  headers_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  // The client was too slow sending its request.
  request_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  method_not_allowed: GrpcStatus.UNIMPLEMENTED,
  internal_error: GrpcStatus.INTERNAL,
};

/** The gRPC status for one of ringroute's own errors: by its code, else by its HTTP status as gRPC maps them. */
export function grpcStatusOf(error: string, status: number): number {
  const known = byError[error];
  if (known !== undefined) return known;
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** Whether a request is a gRPC call: its content-type is application/grpc or application/grpc+FORMAT / ;params. */
export function isGrpc(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const lower = contentType.toLowerCase();
  if (!lower.startsWith("application/grpc")) return false;
  const next = lower.charCodeAt(16);
  // "application/grpc-web" is a different protocol (browsers, HTTP/1.1 framing of its own).
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

/** Milliseconds per `grpc-timeout` unit (gRPC over HTTP/2: Hours, Minutes, Seconds, milli, micro, nano). */
const units: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * A `grpc-timeout` value (1 to 8 digits and a unit) in milliseconds, rounded up so that a positive timeout
 * never becomes 0; undefined when absent or malformed (the call then has no deadline, as gRPC servers treat it).
 */
export function grpcTimeoutMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  return Math.ceil(Number(match[1]) * (units[match[2] as string] as number));
}

/**
 * `grpc-message` as the protocol wants it: percent-encoded UTF-8, every byte outside printable ASCII
 * (0x20–0x7e) and `%` itself escaped.
 */
export function grpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${hex(byte)}`;
  }
  return out;
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}
