/**
 * The routing proxy: an HTTP server that sends each request to the owner of
 * its key. Only ring members are ever contacted; neither the Host header nor
 * an absolute-form target chooses the upstream, so it is no open proxy.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Cluster } from "../cluster.ts";
import { defaultConfig, type KeyConfig, type ProxyConfig } from "../config.ts";
import { listen } from "../utils/listen.ts";
import { AnyMember, Ejections } from "./failover.ts";
import { Exchange, type ForwardContext, forwardContext, Upstreams } from "./forward.ts";
import { type CompiledKey, compileKey } from "./key.ts";
import type { ProxyObserver } from "./observer.ts";
import { replyError } from "./reply.ts";
import { type Refusal, type Router, routeRequest } from "./route.ts";
import { WebSocketRouter } from "./websocket.ts";

export interface ProxyOptions {
  /** The started cluster whose ring routes requests. */
  cluster: Cluster;
  /** Key and forwarding settings; defaults as in defaultConfig(). */
  config?: { key?: KeyConfig; proxy?: ProxyConfig };
  /** Receives request, failure and ejection reports (the admin metrics implement it). */
  observer?: ProxyObserver;
}

export interface RoutingProxy {
  /** The HTTP server; attach to it, or call listen(). */
  readonly server: Server;
  /** Listens on host:port (port 0 picks one) and resolves with the bound address. */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /**
   * Stops accepting, lets requests in flight finish for up to `timeoutMs`,
   * then cuts what is left and closes member connections. Resolves when done.
   */
  close(timeoutMs?: number): Promise<void>;
  /** Members skipped right now after failing repeatedly. */
  ejected(): string[];
  /** WebSocket tunnels open right now. */
  readonly tunnels: number;
}

/** Creates the proxy for `cluster`. Nothing listens until `listen()`. */
export function createProxy(options: ProxyOptions): RoutingProxy {
  const { cluster, observer } = options;
  const defaults = defaultConfig();
  const keyConfig = options.config?.key ?? defaults.key;
  const config = options.config?.proxy ?? defaults.proxy;
  const key: CompiledKey = compileKey(keyConfig);
  const ejections = new Ejections(config.eject.after, config.eject.for);
  const upstreams = new Upstreams(cluster, config);
  const ctx: ForwardContext = forwardContext(config, upstreams, ejections, observer);
  const router: Router = { key, keyConfig, ejections, anyMember: new AnyMember() };

  const stopListening = cluster.listen({
    memberDown(member) {
      upstreams.drop(member.name);
      ejections.forget(member.name);
    },
  });

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const ring = cluster.routing;
    const route = routeRequest(req, ring, router);
    if ("status" in route) {
      rejectRequest(req, res, route);
      return;
    }
    new Exchange(ctx, req, res, ring, route.partition).send(route.member);
  }

  function rejectRequest(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
    // The body (if any) is not wanted; drain it so the connection can be reused.
    req.resume();
    replyError(res, refusal.status, refusal.error, refusal.message, refusal.details);
    observer?.request("none", req.method ?? "GET", refusal.status, 0);
  }

  const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    try {
      handle(req, res);
    } catch (error) {
      replyError(res, 500, "internal_error", (error as Error)?.message ?? String(error));
    }
  });
  // A request routed by key may take longer than Node's default 300 s request timeout allows to be bounded otherwise.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  const websockets = new WebSocketRouter({ cluster, router, config, observer });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => websockets.route(req, socket, head));
  server.on("clientError", (_error, socket: Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });

  let closing: Promise<void> | undefined;
  return {
    server,
    listen: (port: number, host?: string) => listen(server, port, host),
    close(timeoutMs = defaults.shutdownTimeout): Promise<void> {
      closing ??= (async () => {
        stopListening();
        await drain(server, timeoutMs, websockets);
        await upstreams.close();
        websockets.close();
      })();
      return closing;
    },
    ejected: () => ejections.ejected(),
    get tunnels() {
      return websockets.size;
    },
  };
}

/**
 * Stops accepting and waits for open requests to finish, closing keep-alive
 * connections as they go idle; after `timeoutMs` cuts whatever is left.
 */
function drain(server: Server, timeoutMs: number, websockets: WebSocketRouter): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve();
    };
    server.close(() => {
      if (websockets.size === 0) finish();
      else websockets.onEmpty = finish;
    });
    server.closeIdleConnections();
    // A connection whose request just finished becomes idle; close it then, not at the deadline.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const deadline = setTimeout(() => {
      server.closeAllConnections();
      websockets.destroyAll();
      finish();
    }, timeoutMs);
  });
}
