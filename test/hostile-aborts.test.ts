/**
 * The short form of `npm run bench:aborts`: GET load with 3 % of clients
 * sending half a POST body and going away (FIN or RST). An aborted upload
 * frees its member connection at once, so no second passes without a
 * completed GET.
 */
import test from "ava";
import { runAborts } from "../bench/aborts.ts";

test("20 s of GET load with 3 % aborted uploads: every second has completed GETs", async (t) => {
  const result = await runAborts({ seconds: 20, clients: 16, abortRate: 0.03 });
  t.log(`${result.completed} GETs, ${result.aborted} aborted uploads, per second: ${result.perSecond.join(" ")}`);
  t.true(result.aborted > 128, "more aborted uploads than proxy.connections");
  t.is(result.failed, 0);
  t.is(result.stalled, 0, `seconds without a completed GET: ${result.perSecond.join(" ")}`);
});
