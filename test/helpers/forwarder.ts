/**
 * A TCP forwarder on loopback, to put between one process and etcd and cut
 * it: a network partition of that process alone. While cut, open
 * connections are reset and new ones are accepted and reset at once.
 */

import type { AddressInfo } from "node:net";
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class Forwarder {
  #cut = false;
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  /** Forwards 127.0.0.1:<port> to `target` (host:port). */
  static async start(target: { host: string; port: number }): Promise<Forwarder> {
    let forwarder: Forwarder | undefined;
    const server = createServer((client) => {
      const self = forwarder as Forwarder;
      if (self.#cut) {
        client.resetAndDestroy();
        return;
      }
      const upstream = createConnection(target);
      self.#track(client);
      self.#track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    forwarder = new Forwarder(server, (server.address() as AddressInfo).port);
    return forwarder;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  /** Resets every open connection and refuses new ones until `restore`. */
  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.resetAndDestroy();
    this.#sockets.clear();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
  }
}
