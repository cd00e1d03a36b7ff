/**
 * Cluster events as Server-Sent Events (`GET /events`): memberUp,
 * memberDown, acquire, release and ring, each `event: NAME` with a JSON
 * `data:` line, in the order the cluster emits them.
 */
import type { ServerResponse } from "node:http";
import type { Cluster } from "../cluster.ts";
import type { Member } from "../membership/source.ts";

function memberJson(member: Member) {
  return { name: member.name, url: member.url, state: member.state, tags: member.tags };
}

export class EventStream {
  readonly #clients = new Set<ServerResponse>();
  readonly #unsubscribe: () => void;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(cluster: Cluster, heartbeatMs = 15_000) {
    this.#unsubscribe = cluster.listen({
      memberUp: (member) => this.#send("memberUp", memberJson(member)),
      memberDown: (member) => this.#send("memberDown", memberJson(member)),
      acquire: (event) => this.#send("acquire", event),
      release: (event) => this.#send("release", event),
      ring: (ring, previous) =>
        this.#send("ring", {
          checksum: ring.checksum,
          previousChecksum: previous.checksum,
          members: ring.members,
          config: ring.config,
        }),
    });
    // A comment now and then keeps idle proxies and load balancers from closing the stream.
    this.#heartbeat = setInterval(() => {
      for (const client of this.#clients) client.write(": keep-alive\n\n");
    }, heartbeatMs).unref();
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Turns `res` into an event stream until the client goes away. */
  subscribe(res: ServerResponse): void {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    res.write(": connected\n\n");
    this.#clients.add(res);
    res.once("close", () => this.#clients.delete(res));
  }

  #send(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of this.#clients) client.write(frame);
  }

  /** Ends every stream and stops following the cluster. */
  close(): void {
    this.#unsubscribe();
    clearInterval(this.#heartbeat);
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}
