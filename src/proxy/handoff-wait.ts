/**
 * Coordinated hand-offs: a request whose partition no member holds ready
 * waits. The routing table is read again every tick until a member holds
 * it (the request goes there) or `membership.etcd.handoffWait` is over
 * (503 partition_moving, with Retry-After). One copy for HTTP/1.1
 * connections and HTTP/2 streams.
 */
import type { RoutingTable } from "../handoff/table.ts";
import type { Clock } from "../utils/clock.ts";
import type { Ejections } from "./failover.ts";
import { choose, type Refusal } from "./route.ts";
import type { ProxyCluster } from "./upstream.ts";

/** The default `membership.etcd.handoffWait`, and how often a waiting request reads the routing table again. */
export const defaultHandoffWait = 2000;
const waitTick = 25;

/** How a wait ended: a member holds the partition now (in `routing`), the wait ran out, or routing refuses. */
export type WaitResult =
  | { member: string; routing: RoutingTable }
  | { moving: true /** Seconds for Retry-After. */; retryAfter: number }
  | Refusal;

/**
 * Waits for `partition` on `cluster.routing`; `done` is called once, from a timer. Returns the function that
 * cancels the wait (the client went away).
 */
export function awaitPartition(
  cluster: ProxyCluster,
  clock: Clock,
  ejections: () => Ejections,
  partition: number,
  done: (result: WaitResult) => void,
): () => void {
  const wait = cluster.handoffWait ?? defaultHandoffWait;
  const until = clock.now() + wait;
  let cancel: () => void;
  const step = () => {
    const routing = cluster.routing;
    const choice = choose(routing, partition, ejections());
    if ("member" in choice) {
      done({ member: choice.member, routing });
      return;
    }
    const left = until - clock.now();
    if ("wait" in choice && left > 0) {
      cancel = clock.setTimer(step, Math.min(waitTick, left));
      return;
    }
    done("wait" in choice ? { moving: true, retryAfter: Math.max(1, Math.ceil(wait / 1000)) } : choice);
  };
  cancel = clock.setTimer(step, Math.min(waitTick, wait));
  return () => cancel();
}
