/**
 * WebSocket (and any HTTP/1.1 Upgrade) requests, routed by key like every
 * other request and tunnelled by http-proxy, which handles the upgrade
 * handshake and the two-way pipe. No failover here: http-proxy ends the
 * client socket when the member cannot be reached, so the client gets a 502
 * and reconnects; repeated failures eject the member as usual.
 */
import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import httpProxy from "http-proxy";
import type { Cluster } from "../cluster.ts";
import type { KeyConfig, ProxyConfig } from "../config.ts";
import { KeyError } from "../errors/key-error.ts";
import { AnyMember, type Ejections, firstChoice } from "./failover.ts";
import type { CompiledKey } from "./key.ts";
import type { ProxyObserver } from "./observer.ts";

export interface WebSocketRouterOptions {
  cluster: Cluster;
  key: CompiledKey;
  keyConfig: KeyConfig;
  config: ProxyConfig;
  ejections: Ejections;
  observer: ProxyObserver | undefined;
}

export class WebSocketRouter {
  readonly #options: WebSocketRouterOptions;
  readonly #proxy: httpProxy;
  readonly #sockets = new Set<Socket>();
  readonly #any = new AnyMember();
  /** Called once the last open tunnel closes (graceful shutdown waits on it). */
  onEmpty: (() => void) | undefined;

  constructor(options: WebSocketRouterOptions) {
    this.#options = options;
    this.#proxy = httpProxy.createProxyServer({
      ws: true,
      xfwd: options.config.headers.forwarded,
      proxyTimeout: options.config.timeouts.response,
    });
    // Errors are handled per request below; this keeps a stray one from crashing the process.
    this.#proxy.on("error", () => {});
  }

  get size(): number {
    return this.#sockets.size;
  }

  route(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { cluster, key, keyConfig, ejections, observer } = this.#options;
    socket.on("error", () => {}); // a client that vanishes mid-handshake is not our error
    let k: string | undefined;
    try {
      k = key.extract(req);
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      refuse(socket, error.status, { error: error.code, message: error.message, key: { from: keyConfig.from } });
      return;
    }
    const ring = cluster.ring;
    let member: string | undefined;
    let partition = -1;
    if (k === undefined) {
      if (keyConfig.missing === "reject") {
        refuse(socket, 400, {
          error: "missing_key",
          message: `the request has no key: looked in ${key.source}`,
          key: { from: keyConfig.from, source: key.source },
        });
        return;
      }
      member = this.#any.pick(ring, ejections);
    } else if (ring.size > 0) {
      partition = ring.partitionOf(k);
      member = firstChoice(ring, partition, ejections);
    }
    const target = member === undefined ? undefined : cluster.member(member)?.url;
    if (member === undefined || target === undefined) {
      refuse(socket, 503, { error: "no_members", message: "no live member to send the request to" });
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.onEmpty?.();
    });
    // Absolute-form targets must not leak through: http-proxy forwards req.url as the path.
    if (req.url !== undefined && !req.url.startsWith("/")) req.url = new URL(req.url, "http://x").pathname;
    this.#proxy.ws(req, socket, head, { target }, (error: Error) => {
      observer?.upstreamError(member, "connect");
      if (ejections.failure(member)) observer?.ejection(member);
      refuse(socket, 502, {
        error: "bad_gateway",
        message: `member ${member} could not be reached: ${error.message}`,
        member,
        ...(partition >= 0 ? { partition } : {}),
      });
    });
  }

  /** Ends every open tunnel (at the end of a graceful shutdown). */
  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  close(): void {
    this.destroyAll();
    this.#proxy.close();
  }
}

/** Answers an upgrade request with a plain HTTP error and a JSON body, then closes the socket. */
function refuse(socket: Socket, status: number, body: Record<string, unknown>): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
