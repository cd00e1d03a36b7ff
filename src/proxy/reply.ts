import { STATUS_CODES } from "node:http";

/**
 * A whole response ringroute makes itself: `{"error": code, …}` as JSON.
 * Every response ringroute makes itself goes through here, so clients can
 * tell them from a member's.
 */
export function errorResponse(status: number, body: Record<string, unknown>, close: boolean, headers = ""): string {
  const text = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
    "content-type: application/json; charset=utf-8\r\n" +
    `content-length: ${Buffer.byteLength(text)}\r\n` +
    "cache-control: no-store\r\n" +
    headers +
    (close ? "connection: close\r\n" : "") +
    `\r\n${text}`
  );
}

/**
 * The JSON body of one of ringroute's own errors: `error`, `message`, the partition, and after members failed
 * how many were tried (their names, addresses and errors only with `proxy.errors.detail`).
 */
export function errorBody(
  code: string,
  partition: number,
  showDetail: boolean,
  options: {
    message?: string | undefined;
    detail?: { member: string; tried: string[]; cause: string } | undefined;
    extra?: Record<string, unknown> | undefined;
  },
): Record<string, unknown> {
  const { detail, extra } = options;
  const body: Record<string, unknown> = { error: code, message: options.message || messages[code] || code, ...extra };
  if (partition >= 0) body.partition = partition;
  if (detail !== undefined) {
    body.tried = detail.tried.length;
    // Member names, addresses and errnos only when asked for: they help an attacker more than a client.
    if (showDetail) Object.assign(body, { member: detail.member, members: detail.tried, cause: detail.cause });
  }
  return body;
}

/** The short message each of ringroute's own error codes carries. */
export const messages: Record<string, string> = {
  bad_request: "the request is not valid HTTP/1.1",
  request_timeout: "the request was not received in time",
  uri_too_long: "the request target is too long",
  headers_too_large: "the request head is too large or has too many header fields",
  method_not_allowed: "CONNECT is not supported: ringroute is not a forward proxy",
  bad_path: "the request path hides a dot-segment behind an encoded slash",
  https_required: "this port speaks HTTPS: the plain HTTP request was sent to an HTTPS port",
  partition_moving: "no member holds the key's partition ready yet (a hand-off is under way); retry shortly",
  upstream_unavailable: "no member could answer the request",
  upstream_timeout: "the member did not answer in time",
  deadline_exceeded: "the call's deadline (grpc-timeout) passed before the member answered",
  body_not_replayable: "the member failed after the request body was sent; it cannot be replayed",
  no_members: "no live member to send the request to",
  queue_timeout: "every connection to the member stayed busy; try again shortly",
  internal_error: "the proxy failed to handle the request",
  member_protocol:
    "the member speaks HTTP/2 only (protocol: h2c), which has no Upgrade: the request cannot be forwarded to it",
};
