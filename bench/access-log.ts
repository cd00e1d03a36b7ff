/**
 * The access log's own cost: CPU microseconds to format and write one record
 * (the writer `serve` uses on stdout: lines written as bytes, handed in
 * batches to a buffer-mode sonic-boom, here on /dev/null), in alternating
 * rounds with the text writer (what a worker's channel gets) and with a
 * writer that drops records, medians of the rounds. A machine too busy for
 * `bench:proxy` to settle still gives this figure; divide it by ringroute's
 * CPU time a request (1 / req per CPU-second) for the share.
 *
 *   npm run bench:access-log -- [--records 200000] [--rounds 7]
 */
import { openSync } from "node:fs";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { byteAccessLog, createAccessLog } from "../src/commands/logging.ts";
import type { AccessRecord } from "../src/proxy/observer.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({
  options: { records: { type: "string", default: "200000" }, rounds: { type: "string", default: "7" } },
});
const records = Number(values.records);
const rounds = Number(values.rounds);

const devNull = pino.destination({
  fd: openSync("/dev/null", "w"),
  sync: false,
  minLength: 32 * 1024,
  maxWrite: 64 * 1024,
});
const textWriter = createAccessLog({ log: true, sample: 1 }, devNull);
const devNullBytes = pino.destination({
  fd: openSync("/dev/null", "w"),
  sync: false,
  contentMode: "buffer",
  minLength: 32 * 1024,
  maxWrite: 64 * 1024,
});
const writer = byteAccessLog(1, devNullBytes as unknown as { write(bytes: Buffer): boolean });
const record = (i: number): AccessRecord => ({
  method: "GET",
  path: `/users/${i}`,
  status: 200,
  partition: i & 511,
  member: "web-3",
  tried: 1,
  bytesIn: 0,
  bytesOut: 1234,
  totalMs: 1.234,
  upstreamMs: 0.987,
  client: "10.0.0.7",
});

function cpuMicros(write: (r: AccessRecord) => void): number {
  const start = process.cpuUsage();
  for (let i = 0; i < records; i++) write(record(i));
  devNull.flushSync();
  devNullBytes.flushSync();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / records;
}

const logged: number[] = [];
const text: number[] = [];
const dropped: number[] = [];
cpuMicros((r) => writer.write(r)); // warm-up
cpuMicros((r) => textWriter?.write(r));
for (let round = 0; round < rounds; round++) {
  logged.push(cpuMicros((r) => writer.write(r)));
  text.push(cpuMicros((r) => textWriter?.write(r)));
  dropped.push(cpuMicros(() => {}));
}
const cost = median(logged) - median(dropped);
process.stdout.write(
  `access log: ${cost.toFixed(2)} µs CPU a record as bytes (serve's writer), ` +
    `${(median(text) - median(dropped)).toFixed(2)} µs as text (median of ${rounds} rounds of ${records}; ` +
    `with ${median(logged).toFixed(2)} / ${median(text).toFixed(2)}, without ${median(dropped).toFixed(2)})\n`,
);
