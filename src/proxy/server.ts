/**
 * The routing proxy: an HTTP/1.1 engine on raw sockets that sends each
 * request to the owner of its key. Only ring members are ever contacted;
 * neither the Host header nor an absolute-form target chooses the upstream,
 * so it is no open proxy.
 */
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { defaultConfig, type KeyConfig, type ProxyConfig } from "../config.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { ClientConnection, type ClientServer } from "./client.ts";
import { Deadlines } from "./deadlines.ts";
import type { EngineContext, Tunnel } from "./exchange.ts";
import { AnyMember, Ejections } from "./failover.ts";
import { H1Transport } from "./h2/h1-member.ts";
import { h2cTransport } from "./h2/member-pool.ts";
import { H2Sessions } from "./h2/server.ts";
import type { StreamServer } from "./h2/stream.ts";
import { type MemberTransport, memberProtocol, type TransportFactory } from "./h2/transport.ts";
import { compileKey } from "./key.ts";
import type { ProxyObserver } from "./observer.ts";
import { retryPolicy } from "./retry.ts";
import type { Router } from "./route.ts";
import { sniffPreface, sniffTls } from "./sniff.ts";
import { type PoolSettings, type ProxyCluster, Upstreams } from "./upstream.ts";

export type { ProxyCluster } from "./upstream.ts";

/** PEM certificate chain, key and optional CA bundle for HTTPS on the listener. */
export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer | undefined;
}

export interface ProxyOptions {
  /** The started cluster (or a worker's view of one) whose routing ring routes requests. */
  cluster: ProxyCluster;
  /** Key and forwarding settings, and whether clients may speak HTTP/2; defaults as in defaultConfig(). */
  config?: { key?: KeyConfig; proxy?: ProxyConfig; http2?: boolean };
  /** How members declared `protocol: h2c` are reached; default: a pool of multiplexed h2c sessions per member. */
  h2c?: TransportFactory;
  /** Receives request, failure and ejection reports (the admin metrics implement it). */
  observer?: ProxyObserver;
  logger?: Logger;
  clock?: Clock;
  /** HTTPS on the listener; absent: plain HTTP. */
  tls?: TlsMaterial;
}

export interface RoutingProxy {
  /** The listening socket server (with `tls`, a TCP server handing TLS connections to a tls.Server). */
  readonly server: Server;
  /** Listens on host:port (port 0 picks one) and resolves with the bound address. */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Serves a connection accepted elsewhere (a worker process gets them from its primary). */
  accept(socket: Socket): void;
  /**
   * Stops accepting; responses from now on carry `Connection: close`, idle
   * keep-alive connections close between requests; at `timeoutMs` whatever
   * is left (clients, members, tunnels) is destroyed. Resolves when done.
   */
  close(timeoutMs?: number): Promise<void>;
  /**
   * New key and proxy settings for requests that start from now on (SIGHUP); `http2` (when given) for
   * connections accepted from now on.
   */
  reconfigure(proxy: ProxyConfig, key: KeyConfig, http2?: boolean): void;
  /** New certificate and key for new TLS connections; throws when the listener is plain HTTP. */
  reloadTls(tls: TlsMaterial): void;
  /** Members skipped right now after failing repeatedly. */
  ejected(): string[];
  /** Upgrade tunnels open right now. */
  readonly tunnels: number;
  /** Client connections open right now, HTTP/1.1 and HTTP/2 (tunnels not counted). */
  readonly connections: number;
}

/** Creates the proxy for `cluster`. Nothing listens until `listen()`. */
export function createProxy(options: ProxyOptions): RoutingProxy {
  const { cluster, observer } = options;
  const defaults = defaultConfig();
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  let proxyConfig = options.config?.proxy ?? defaults.proxy;
  let keyConfig = options.config?.key ?? defaults.key;
  let http2 = options.config?.http2 ?? defaults.http2;
  const deadlines = new Deadlines(clock, shortest(proxyConfig));
  const ejections = new Ejections(proxyConfig.eject.after, proxyConfig.eject.for, () => clock.now());
  const upstreams = new Upstreams(cluster, poolSettings(proxyConfig), deadlines);
  const tunnels = new Set<Tunnel>();
  const connections = new Set<ClientConnection>();
  let onQuiet: (() => void) | undefined;
  const quiet = () => {
    if (connections.size === 0 && tunnels.size === 0 && sessions.size === 0) onQuiet?.();
  };

  const context = (config: ProxyConfig): EngineContext => ({
    config,
    upstreams,
    ejections,
    observer,
    deadlines,
    logger,
    policy: retryPolicy(config.retry),
    tunnels,
    tunnelsEmpty: quiet,
    h2c,
  });
  const router = (key: KeyConfig): Router => ({
    key: compileKey(key),
    keyConfig: key,
    ejections,
    anyMember: new AnyMember(),
  });

  const h1 = new H1Transport(upstreams);
  const h2c: MemberTransport = (options.h2c ?? h2cTransport)({ cluster, config: proxyConfig, deadlines, logger });
  const state: ClientServer & StreamServer = {
    ctx: context(proxyConfig),
    router: router(keyConfig),
    key: compileKey(keyConfig),
    keyConfig,
    cluster,
    deadlines,
    clock,
    closing: false,
    lingering: new Set(),
    tls: options.tls !== undefined,
    transport: (member) => (memberProtocol(cluster.member(member)) === "h2c" ? h2c : h1),
    connectionClosed(conn) {
      connections.delete(conn);
      quiet();
    },
  };

  const sessions = new H2Sessions(state, proxyConfig, deadlines, quiet);

  const stopListening = cluster.listen({
    memberDown(member) {
      upstreams.drop(member.name);
      h2c.drop(member.name);
      ejections.forget(member.name);
    },
    // Back in the ring is a new life (a restart that left first, a drain undone): failures counted while it
    // was leaving, such as the 503s of a member saving its partitions, say nothing about it now.
    memberUp(member) {
      ejections.forget(member.name);
    },
    // A new URL or protocol: connections to the old address, or in the old protocol, are closed now
    // (idle ones at once, busy ones when their response ends), not left idle until a timeout.
    memberChanged(member) {
      upstreams.drop(member.name);
      h2c?.drop(member.name);
    },
  });

  // Set once close() finished: nothing is served after the deadline.
  let closed = false;
  const accept = (socket: Socket) => {
    // While closing, a connection accepted just before the listener closed (or handed over late by
    // node:cluster's primary) is still served, its response with `Connection: close`: never reset.
    if (closed) {
      socket.destroy();
      return;
    }
    connections.add(new ClientConnection(socket, state));
  };
  const acceptH2 = (socket: Socket) => {
    if (closed) socket.destroy();
    else sessions.accept(socket);
  };
  // With HTTP/2 on, a cleartext connection's first bytes tell the h2 preface (prior knowledge) from HTTP/1.1.
  const acceptClear = (socket: Socket) => {
    if (http2) sniffPreface(socket, accept, acceptH2, deadlines, state.ctx.config.timeouts.head);
    else accept(socket);
  };
  // Over TLS, ALPN chose: h2 when the client offered it and HTTP/2 is on, else HTTP/1.1.
  const acceptTls = (socket: Socket) => {
    if ((socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === "h2") acceptH2(socket);
    else accept(socket);
  };
  const alpn = ({ protocols }: { protocols: string[] }): string | undefined => {
    if (http2 && protocols.includes("h2")) return "h2";
    return protocols.includes("http/1.1") ? "http/1.1" : undefined;
  };
  let server: Server;
  let tlsServer: TlsServer | undefined;
  if (options.tls !== undefined) {
    const tls = createTlsServer({ ...tlsOptions(options.tls), allowHalfOpen: true, ALPNCallback: alpn }, acceptTls);
    // A handshake that fails is the client's problem, not ours.
    tls.on("tlsClientError", (_error, socket) => socket.destroy());
    tlsServer = tls;
    // The listener is plain TCP: its first byte tells TLS from plain HTTP, which gets a 400 instead of silence.
    server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      if (state.closing) socket.destroy();
      else sniffTls(socket, tls, deadlines, state.ctx.config.timeouts.head);
    });
  } else {
    server = createServer({ allowHalfOpen: true, noDelay: true }, acceptClear);
  }

  let closing: Promise<void> | undefined;
  return {
    server,
    listen: (port: number, host?: string) =>
      new Promise<AddressInfo>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    accept(socket: Socket) {
      // As the listener would have made it: half-open allowed, no Nagle delay.
      socket.allowHalfOpen = true;
      socket.setNoDelay(true);
      server.emit("connection", socket);
    },
    close(timeoutMs = defaults.shutdownTimeout): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        stopListening();
        state.closing = true;
        let finished = false;
        let cancelDeadline: () => void = () => {};
        const finish = () => {
          if (finished) return;
          finished = true;
          closed = true;
          cancelDeadline();
          for (const socket of [...state.lingering]) socket.destroy();
          upstreams.destroy();
          h2c.destroy();
          deadlines.stop();
          resolve();
        };
        onQuiet = () => {
          if (!server.listening) finish();
        };
        if (server.listening) server.close(() => quiet());
        for (const conn of connections) conn.shutdown();
        sessions.close();
        h2c.close();
        // The deadline: cut clients, tunnels and member connections, whatever they are doing.
        cancelDeadline = clock.setTimer(() => {
          for (const conn of [...connections]) conn.destroy();
          for (const tunnel of [...tunnels]) tunnel.destroy();
          sessions.destroy();
          finish();
        }, timeoutMs);
        if (!server.listening) quiet();
      });
      return closing;
    },
    reconfigure(proxy: ProxyConfig, key: KeyConfig, enableHttp2?: boolean) {
      proxyConfig = proxy;
      keyConfig = key;
      if (enableHttp2 !== undefined) http2 = enableHttp2;
      sessions.reconfigure(proxy);
      h2c.reconfigure(proxy);
      state.ctx = context(proxy);
      state.router = router(key);
      state.key = compileKey(key);
      state.keyConfig = key;
      upstreams.reconfigure(poolSettings(proxy));
      deadlines.retune(shortest(proxy));
    },
    reloadTls(tls: TlsMaterial) {
      if (tlsServer === undefined) throw new Error("the proxy listens on plain HTTP");
      tlsServer.setSecureContext(tlsOptions(tls));
    },
    ejected: () => ejections.ejected(),
    get tunnels() {
      return tunnels.size;
    },
    get connections() {
      return connections.size + sessions.size;
    },
  };
}

function tlsOptions(tls: TlsMaterial): { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer } {
  // Built once here so that a bad PEM fails at start or reload, not at the first handshake.
  createSecureContext({ cert: tls.cert, key: tls.key, ...(tls.ca === undefined ? {} : { ca: tls.ca }) });
  return { cert: tls.cert, key: tls.key, ...(tls.ca === undefined ? {} : { ca: tls.ca }) };
}

function poolSettings(config: ProxyConfig): PoolSettings {
  const { timeouts, connections, limits } = config;
  return {
    connections,
    connect: timeouts.connect,
    response: timeouts.response,
    keepAlive: timeouts.keepAlive,
    queue: timeouts.queue,
    limits: { headers: limits.headers, headerBytes: limits.responseHeaderBytes, url: Number.MAX_SAFE_INTEGER },
  };
}

function shortest(config: ProxyConfig): number {
  const t = config.timeouts;
  return Math.min(t.connect, t.response, t.keepAlive, t.head, t.body, t.clientIdle, t.clientWrite, t.queue);
}
