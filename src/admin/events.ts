/**
 * Cluster events as Server-Sent Events (`GET /events`). Every event carries
 * an `id:`; a client that reconnects with `Last-Event-ID` gets what it missed
 * from a bounded history, or a `reset` event when that is gone. By default a
 * stream carries memberUp, memberDown, ring (one summary a change) and
 * source; routing (one summary a change of what is routed, under coordinated
 * hand-offs), acquire and release (one a moved slot) and cells (a change's
 * moved slots in one event, what the ring page applies) only when `types=`
 * asks. Under coordinated hand-offs `cells` follows the routing table, not
 * the target ring: the page shows where requests go.
 *
 * Clients are fed from the shared history at their own pace: a client that
 * stops reading keeps only a cursor, and is dropped once the history moves
 * past it, so memory stays bounded whatever the clients do.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Cluster } from "../cluster.ts";
import { comparePlan } from "../commands/plan.ts";
import type { RoutingTable } from "../handoff/table.ts";
import { protocolOf } from "../membership/protocol.ts";
import type { Member } from "../membership/source.ts";
import type { Ring } from "../ring/ring.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { movedCells, routedCells, routedMoves } from "./ring-view.ts";

export const eventTypes = [
  "memberUp",
  "memberDown",
  "ring",
  "routing",
  "source",
  "acquire",
  "release",
  "cells",
] as const;
export type EventType = (typeof eventTypes)[number];
const defaultTypes: readonly EventType[] = ["memberUp", "memberDown", "ring", "source"];
const partitionTypes: ReadonlySet<EventType> = new Set(["acquire", "release"]);
/** Changes kept for GET /changes (the ring page's log after a load). */
export const changeHistory = 100;

export interface EventStreamOptions {
  clock?: Clock;
  logger?: Logger;
  /** Milliseconds between keep-alive comments (default 15 s). */
  heartbeatMs?: number;
  /**
   * Bytes of recent event frames kept for resuming and for clients that lag
   * (default 32 MiB: one join at P = 65536 is about 20 MB of acquire/release).
   */
  historyBytes?: number;
}

/** A `types=` value that names no event. */
export class EventTypeError extends Error {}

/** Parses `types=a,b`; undefined gives the default set. */
export function parseTypes(value: string | null | undefined): Set<EventType> {
  if (value === null || value === undefined || value.trim() === "") return new Set(defaultTypes);
  const types = new Set<EventType>();
  for (const name of value.split(",").map((t) => t.trim())) {
    if (!(eventTypes as readonly string[]).includes(name)) {
      throw new EventTypeError(`unknown event type "${name}"; known: ${eventTypes.join(", ")}`);
    }
    types.add(name as EventType);
  }
  return types;
}

function memberJson(member: Member) {
  return { name: member.name, url: member.url, protocol: protocolOf(member), state: member.state, tags: member.tags };
}

/** Members that gave or took primaries in a change, most first, with how many; the rest summed. */
export interface MoveCounts {
  members: { name: string; partitions: number }[];
  /** Primaries given or taken by members past the first ten. */
  others: number;
}

/**
 * Who gave primaries to whom: for every partition whose primary changed, the
 * old owner in `from` and the new one in `to` (a partition with no owner
 * before or after counts on one side only).
 */
export function primaryMoves(ring: Ring, previous: Ring): { from: MoveCounts; to: MoveCounts } {
  const from = new Map<string, number>();
  const to = new Map<string, number>();
  if (ring.config.partitions === previous.config.partitions) {
    const bump = (counts: Map<string, number>, name: string | undefined) => {
      if (name !== undefined) counts.set(name, (counts.get(name) ?? 0) + 1);
    };
    for (let p = 0; p < ring.config.partitions; p++) {
      const was = previous.owner(p, 0);
      const now = ring.owner(p, 0);
      if (was === now) continue;
      bump(from, was);
      bump(to, now);
    }
  }
  const top = (counts: Map<string, number>): MoveCounts => {
    const sorted = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return {
      members: sorted.slice(0, 10).map(([name, partitions]) => ({ name, partitions })),
      others: sorted.slice(10).reduce((sum, [, n]) => sum + n, 0),
    };
  };
  return { from: top(from), to: top(to) };
}

/** The `ring` event: what changed, in the plan's terms (× optimum = moved / optimal primaries), and who gave primaries to whom. */
export function ringSummary(ring: Ring, previous: Ring) {
  const added = ring.members.filter((m) => !previous.has(m));
  const removed = previous.members.filter((m) => !ring.has(m));
  const comparable = ring.config.partitions === previous.config.partitions;
  const plan = comparable ? comparePlan(previous, ring, added, removed) : undefined;
  return {
    ...primaryMoves(ring, previous),
    checksum: ring.checksum,
    previousChecksum: previous.checksum,
    size: ring.size,
    added,
    removed,
    config: ring.config,
    moved: plan === undefined ? null : { primaries: plan.moved_primaries, replicaSlots: plan.moved_replica_slots },
    optimalPrimaries: plan?.optimal_primaries ?? null,
    timesOptimum:
      plan === undefined || plan.optimal_primaries === 0
        ? null
        : Math.round((100 * plan.moved_primaries) / plan.optimal_primaries) / 100,
  };
}

/** One ring change as the log keeps it: the `ring` event without the config, numbered and timed. */
export type RingChange = { seq: number; at: string; coordinated: boolean } & Omit<
  ReturnType<typeof ringSummary>,
  "config"
>;

/**
 * One change of what is routed under coordinated hand-offs (a slot from its
 * old owner to "none ready", then to the new owner), as the `routing` event
 * and the log carry it: `kind: "routing"` tells it from a ring change.
 */
export type RoutingChange = { seq: number; at: string; kind: "routing" } & ReturnType<typeof routedMoves>;

/** An entry of GET /changes: a change of the target ring, or of what is routed. */
export type Change = RingChange | RoutingChange;

interface Entry {
  seq: number;
  type: EventType;
  /** Encoded once, written to every client as is. */
  frame: Buffer;
}

interface Client {
  res: ServerResponse;
  types: ReadonlySet<EventType>;
  /** Sequence number of the next history entry to consider. */
  next: number;
  /** Waiting for 'drain': the socket's buffer is full. */
  blocked: boolean;
}

export class EventStream {
  readonly #clients = new Set<Client>();
  readonly #unsubscribe: () => void;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #heartbeatMs: number;
  readonly #historyBytes: number;
  /** Distinguishes this process's ids from a previous one's, so a resume across a restart resets. */
  readonly #epoch: string;
  #cancelHeartbeat: () => void = () => {};
  #history: Entry[] = [];
  #start = 0;
  #bytes = 0;
  #nextSeq = 1;
  /** The first sequence number the history is complete from. */
  #oldest = 1;
  /** Clients that want acquire/release; those are recorded only while there is one. */
  #partitionClients = 0;
  /** First sequence number from which acquire/release are complete in the history. */
  #partitionsSince = 1;
  /** Clients that want `cells`; the moved cells are computed only while there is one. */
  #cellsClients = 0;
  /** The last `changeHistory` changes (ring and routing), oldest first. */
  #changes: Change[] = [];
  /** The routing table the last `changed` saw: what routing changes are diffed against. */
  #routing: RoutingTable;
  #changeSeq = 0;
  #closed = false;

  constructor(cluster: Cluster, options: EventStreamOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#heartbeatMs = options.heartbeatMs ?? 15_000;
    this.#historyBytes = options.historyBytes ?? 32 * 1024 * 1024;
    this.#epoch = this.#clock.now().toString(36);
    this.#routing = cluster.routing;
    this.#unsubscribe = cluster.listen({
      memberUp: (member) => this.#append("memberUp", memberJson(member)),
      memberDown: (member) => this.#append("memberDown", memberJson(member)),
      acquire: (event) => {
        if (this.#partitionClients > 0) this.#append("acquire", event);
      },
      release: (event) => {
        if (this.#partitionClients > 0) this.#append("release", event);
      },
      ring: (ring, previous) => {
        const { config, ...summary } = ringSummary(ring, previous);
        const change: RingChange = {
          seq: ++this.#changeSeq,
          at: new Date(this.#clock.now()).toISOString(),
          ...summary,
          // Under coordinated hand-offs this is the target; what moves is told by routing changes.
          coordinated: cluster.routing.coordinated,
        };
        this.#keep(change);
        this.#append("ring", { ...change, config });
        // Under coordinated hand-offs the map shows what is routed: its cells come with `changed`.
        if (this.#cellsClients > 0 && !cluster.routing.coordinated) this.#append("cells", movedCells(ring, previous));
      },
      changed: () => this.#routed(cluster.routing),
      source: (up, error) =>
        this.#append("source", { up, since: new Date(this.#clock.now()).toISOString(), error: error?.message ?? null }),
    });
    this.#scheduleHeartbeat();
  }

  #keep(change: Change): void {
    this.#changes.push(change);
    if (this.#changes.length > changeHistory) this.#changes.shift();
  }

  /**
   * A new routing table under coordinated hand-offs (or the first one, or
   * the last before they stop): its moves are logged and, for the page, sent
   * as cells. Without coordination the table is the ring and the ring event
   * has said it all.
   */
  #routed(routing: RoutingTable): void {
    const previous = this.#routing;
    if (routing === previous || routing.checksum === previous.checksum) return;
    this.#routing = routing;
    if (!routing.coordinated && !previous.coordinated) return;
    const change: RoutingChange = {
      seq: ++this.#changeSeq,
      at: new Date(this.#clock.now()).toISOString(),
      kind: "routing",
      ...routedMoves(routing, previous),
    };
    this.#keep(change);
    this.#append("routing", change);
    if (this.#cellsClients > 0) this.#append("cells", routedCells(routing, previous));
  }

  /** Connected clients. */
  get size(): number {
    return this.#clients.size;
  }

  /** The last 100 changes (ring and routing), oldest first: what GET /changes answers. */
  get changes(): readonly Change[] {
    return this.#changes;
  }

  /** Bytes of event frames held for resuming and lagging clients. */
  get historyBytes(): number {
    return this.#bytes;
  }

  /**
   * Turns `res` into an event stream of `types` until the client goes away.
   * With `lastEventId` (the Last-Event-ID header), first replays what the
   * client missed, or sends `reset` when the history no longer has it.
   */
  subscribe(req: IncomingMessage, res: ServerResponse, types: ReadonlySet<EventType>): void {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    res.write(": connected\nretry: 2000\n\n");
    const wantsPartitions = [...types].some((t) => partitionTypes.has(t));
    if (wantsPartitions && this.#partitionClients++ === 0) this.#partitionsSince = this.#nextSeq;
    if (types.has("cells")) this.#cellsClients++;
    const client: Client = { res, types, next: this.#nextSeq, blocked: false };
    const lastEventId = req.headers["last-event-id"];
    if (typeof lastEventId === "string" && lastEventId !== "") {
      const resumeFrom = this.#resumePoint(lastEventId, wantsPartitions);
      if (resumeFrom === undefined) {
        res.write(`event: reset\ndata: ${JSON.stringify({ reason: "history_lost", lastEventId })}\n\n`);
      } else {
        client.next = resumeFrom;
      }
    }
    this.#clients.add(client);
    res.once("close", () => this.#remove(client));
    this.#pump(client);
  }

  /** Ends every stream and stops following the cluster. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#cancelHeartbeat();
    for (const client of this.#clients) client.res.end();
    this.#clients.clear();
    this.#history = [];
    this.#bytes = 0;
  }

  /** The sequence number to resume after `id`, or undefined when that is not in the history. */
  #resumePoint(id: string, wantsPartitions: boolean): number | undefined {
    const [epoch, seqText] = id.split(".");
    const seq = Number(seqText);
    if (epoch !== this.#epoch || !Number.isSafeInteger(seq) || seq < 0 || seq >= this.#nextSeq) return undefined;
    if (seq + 1 < this.#oldest) return undefined;
    // This client's subscription (just counted) may be what turned recording on.
    if (wantsPartitions && seq + 1 < this.#partitionsSince) return undefined;
    return seq + 1;
  }

  #append(type: EventType, data: unknown): void {
    if (this.#closed) return;
    const seq = this.#nextSeq++;
    const frame = Buffer.from(`id: ${this.#epoch}.${seq}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    this.#history.push({ seq, type, frame });
    this.#bytes += frame.length;
    while (this.#bytes > this.#historyBytes && this.#history.length - this.#start > 1) this.#evict();
    for (const client of this.#clients) if (!client.blocked) this.#pump(client);
  }

  #evict(): void {
    const entry = this.#history[this.#start] as Entry;
    this.#history[this.#start] = undefined as unknown as Entry;
    this.#start++;
    this.#oldest = entry.seq + 1;
    this.#bytes -= entry.frame.length;
    if (this.#start > 1024 && this.#start * 2 > this.#history.length) {
      this.#history = this.#history.slice(this.#start);
      this.#start = 0;
    }
    for (const client of this.#clients) {
      if (client.next > entry.seq) continue;
      if (client.types.has(entry.type)) {
        this.#logger.warn(
          { client: client.res.socket?.remoteAddress, buffered: client.res.writableLength },
          "dropped an event stream client that fell behind the history",
        );
        this.#remove(client);
        client.res.destroy();
      } else {
        client.next = entry.seq + 1;
      }
    }
  }

  /** Writes the client's next wanted entries until its socket pushes back. */
  #pump(client: Client): void {
    const history = this.#history;
    for (let i = this.#indexOf(client.next); i < history.length; i++) {
      const entry = history[i] as Entry;
      client.next = entry.seq + 1;
      if (!client.types.has(entry.type)) continue;
      if (!client.res.write(entry.frame)) {
        client.blocked = true;
        client.res.once("drain", () => {
          client.blocked = false;
          if (this.#clients.has(client)) this.#pump(client);
        });
        return;
      }
    }
  }

  /** The index of the first kept entry with a sequence number of at least `seq`. */
  #indexOf(seq: number): number {
    let low = this.#start;
    let high = this.#history.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#history[mid] as Entry).seq < seq) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #remove(client: Client): void {
    if (!this.#clients.delete(client)) return;
    if (client.types.has("cells")) this.#cellsClients--;
    if (![...client.types].some((t) => partitionTypes.has(t))) return;
    // With no one following them, partition events can no longer be resumed (a new follower
    // starts from #partitionsSince), so their memory goes now.
    if (--this.#partitionClients === 0) this.#purgePartitionEvents();
  }

  #purgePartitionEvents(): void {
    const kept = this.#history.slice(this.#start).filter((entry) => !partitionTypes.has(entry.type));
    this.#history = kept;
    this.#start = 0;
    this.#bytes = kept.reduce((sum, entry) => sum + entry.frame.length, 0);
  }

  // A comment now and then keeps idle proxies and load balancers from closing the stream.
  #scheduleHeartbeat(): void {
    this.#cancelHeartbeat = this.#clock.setTimer(() => {
      for (const client of this.#clients) if (!client.blocked) client.res.write(": keep-alive\n\n");
      if (!this.#closed) this.#scheduleHeartbeat();
    }, this.#heartbeatMs);
  }
}
