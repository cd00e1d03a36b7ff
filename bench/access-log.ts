/**
 * The access log's own cost: CPU microseconds to format and write one record
 * (the writer `serve` uses, into /dev/null), in alternating rounds with a
 * writer that drops records, medians of the rounds. A machine too busy for
 * `bench:proxy` to settle still gives this figure; divide it by ringroute's
 * CPU time a request (1 / req per CPU-second) for the share.
 *
 *   npm run bench:access-log -- [--records 200000] [--rounds 7]
 */
import { openSync } from "node:fs";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createAccessLog } from "../src/commands/logging.ts";
import type { AccessRecord } from "../src/proxy/observer.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({
  options: { records: { type: "string", default: "200000" }, rounds: { type: "string", default: "7" } },
});
const records = Number(values.records);
const rounds = Number(values.rounds);

const devNull = pino.destination({ fd: openSync("/dev/null", "w"), sync: false, minLength: 4096 });
const writer = createAccessLog({ log: true, sample: 1 }, devNull);
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
  const used = process.cpuUsage(start);
  return (used.user + used.system) / records;
}

const logged: number[] = [];
const dropped: number[] = [];
cpuMicros((r) => writer?.write(r)); // warm-up
for (let round = 0; round < rounds; round++) {
  logged.push(cpuMicros((r) => writer?.write(r)));
  dropped.push(cpuMicros(() => {}));
}
const cost = median(logged) - median(dropped);
process.stdout.write(
  `access log: ${cost.toFixed(2)} µs CPU a record (median of ${rounds} rounds of ${records}; ` +
    `with ${median(logged).toFixed(2)}, without ${median(dropped).toFixed(2)})\n`,
);
