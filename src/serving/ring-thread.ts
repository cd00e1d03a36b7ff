/**
 * The ring-building thread: builds each requested ring and transfers its
 * table back, so the thread that asked never runs the placement itself.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { Ring } from "../ring/ring.ts";
import type { BuildReply, BuildRequest } from "./ring-builder.ts";

// A lower CPU priority for this thread only, when asked (on Linux a thread has its own nice
// value, addressed by its thread id).
const nice = (workerData as { nice?: number } | undefined)?.nice ?? 0;
if (nice !== 0) {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // not Linux, or not allowed: the build runs at the process's priority
  }
}

parentPort?.on("message", ({ id, members, config }: BuildRequest) => {
  let reply: BuildReply;
  try {
    const ring = Ring.build(members, config);
    // Transfer, not copy: the ring built here is dropped right after.
    const table = ring.table.byteLength === ring.table.buffer.byteLength ? ring.table : ring.table.slice();
    reply = { id, members: ring.members, table };
    parentPort?.postMessage(reply, [table.buffer as ArrayBuffer]);
  } catch (error) {
    reply = { id, error: (error as Error)?.message ?? String(error) };
    parentPort?.postMessage(reply);
  }
});
