/**
 * The routing source of a running proxy: the membership source a config
 * names (or demo backends when it names none) feeding a Cluster that builds
 * its rings on a thread, with a log line for each membership change. Both
 * hosts run exactly one: in-process, next to the proxy; with workers, in
 * the primary.
 */
import { Cluster } from "../cluster.ts";
import type { Config } from "../config.ts";
import { type DemoBackend, startDemoBackends } from "../demo/backends.ts";
import type { MembershipConfig } from "../membership/config.ts";
import { createSource } from "../membership/index.ts";
import { movement } from "../ring/diff.ts";
import type { Clock } from "../utils/clock.ts";
import type { Logger } from "../utils/logger.ts";
import type { ReloadPlan } from "./reload.ts";
import { RingBuilder } from "./ring-builder.ts";

export interface RoutingSource {
  cluster: Cluster;
  demo: DemoBackend[];
  /** A config's membership as it runs: the demo backends stand in for none. */
  membershipOf(config: Config): MembershipConfig;
  /** Applies the ring and membership parts of a reload plan. */
  reload(plan: ReloadPlan): Promise<void>;
  /** Stops the source, the build thread and the demo backends. */
  stop(): Promise<void>;
}

/** Makes the routing source for `config`; the cluster is not started yet. */
export async function createRoutingSource(config: Config, logger: Logger, clock?: Clock): Promise<RoutingSource> {
  let demo: DemoBackend[] = [];
  let demoMembership: MembershipConfig | undefined;
  if (config.membership === undefined) {
    demo = await startDemoBackends();
    demoMembership = { static: { members: demo.map(({ name, url }) => ({ name, url })) } };
    logger.info(
      { demo: demo.map(({ name, url }) => ({ name, url })) },
      `no membership configured: started ${demo.length} demo backends`,
    );
  }
  const membershipOf = (c: Config) => c.membership ?? (demoMembership as MembershipConfig);
  const sourceOf = (c: Config) => createSource(membershipOf(c), { logger: logger.child({ component: "membership" }) });
  // A large ring takes seconds of CPU to place: built on a thread, never on the loop that serves.
  // Not with coordinated hand-offs: there the source itself says what to route by, and its member
  // records must reach the Cluster with it, not one build later.
  const builder = new RingBuilder({ logger: logger.child({ component: "ring" }) });
  const coordinated = membershipOf(config).etcd?.handoff === "coordinated";
  const cluster = new Cluster({
    source: sourceOf(config),
    ring: config.ring,
    ...(coordinated ? {} : { build: builder.build }),
    logger: logger.child({ component: "cluster" }),
    ...(clock === undefined ? {} : { clock }),
  });
  logMembership(cluster, logger.child({ component: "ring" }));
  return {
    cluster,
    demo,
    membershipOf,
    async reload(plan) {
      if (plan.ring) await cluster.reconfigure({ ring: plan.running.ring });
      if (plan.membership) await cluster.reconfigure({ source: sourceOf(plan.running) });
    },
    async stop() {
      await cluster.stop();
      await builder.close();
      await Promise.all(demo.map((d) => d.close()));
    },
  };
}

/** One line a membership change: who joined or left and why, the new checksum, what moved. */
function logMembership(cluster: Cluster, logger: Logger): void {
  cluster.listen({
    memberUp(member) {
      logger.info({ member: member.name, url: member.url }, "member joined the ring");
    },
    memberDown(member) {
      // alive but out: the tag filter or readiness left it out.
      const why = member.state === "alive" ? "filtered out" : member.state;
      logger.info({ member: member.name, why }, `member left the ring (${why})`);
    },
    ring(ring, previous) {
      // A new partition count moves every key; movement() compares equal counts only.
      const moved =
        previous.config.partitions === ring.config.partitions
          ? movement(previous, ring)
          : { primaries: ring.config.partitions, replicaSlots: ring.config.partitions * ring.ownerCount };
      logger.info(
        {
          checksum: ring.checksum,
          previous: previous.checksum,
          members: ring.size,
          partitions: ring.config.partitions,
          moved: moved.primaries,
          movedReplicaSlots: moved.replicaSlots,
        },
        "ring changed",
      );
    },
  });
}
