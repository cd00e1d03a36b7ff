import type { ServerResponse } from "node:http";

/**
 * Answers with a small JSON error body: `{"error": code, "message": …}` plus
 * details. Every response ringroute makes itself goes through here, so
 * clients can tell them from a member's.
 */
export function replyError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, message, ...details });
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}
