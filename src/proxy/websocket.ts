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
import type { ProxyConfig } from "../config.ts";
import { originForm } from "./key.ts";
import type { ProxyObserver } from "./observer.ts";
import { type Router, routeRequest } from "./route.ts";

export interface WebSocketRouterOptions {
  cluster: Cluster;
  /** The same routing as plain requests get. */
  router: Router;
  config: ProxyConfig;
  observer: ProxyObserver | undefined;
}

export class WebSocketRouter {
  readonly #options: WebSocketRouterOptions;
  readonly #proxy: httpProxy;
  readonly #sockets = new Set<Socket>();
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
    const { cluster, router, observer } = this.#options;
    const { ejections } = router;
    socket.on("error", () => {}); // a client that vanishes mid-handshake is not our error
    const route = routeRequest(req, cluster.routing, router);
    if ("status" in route) {
      refuse(socket, route.status, { error: route.error, message: route.message, ...route.details });
      return;
    }
    const { member, partition } = route;
    const target = cluster.member(member)?.url;
    if (target === undefined) {
      refuse(socket, 503, { error: "no_members", message: `member ${member} has left` });
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.onEmpty?.();
    });
    // http-proxy forwards req.url as the path: an absolute-form target must not leak through.
    req.url = originForm(req.url ?? "/");
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
