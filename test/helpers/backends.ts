import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Cluster } from "../../src/cluster.ts";
import { type ProxyConfig, parseConfig } from "../../src/config.ts";
import { createProxy, type RoutingProxy } from "../../src/proxy/server.ts";
import { TestSource } from "./source.ts";

export { TestSource };

/** What a test backend saw of a request; its default answer echoes it as JSON. */
export interface Seen {
  backend: string;
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  rawHeaders: string[];
  bodyLength: number;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, backend: Backend) => void;

export interface Backend {
  name: string;
  url: string;
  server: Server;
  /** Requests that reached this backend, in order. */
  seen: Seen[];
  /** Replaces how this backend answers (default: echo). */
  handler: Handler | undefined;
  /** Stops listening and cuts open connections: a crashed backend. */
  kill(): Promise<void>;
}

/** Answers 200 with JSON describing the request, after reading its whole body. */
export const echo: Handler = (req, res, backend) => {
  let bodyLength = 0;
  req.on("data", (chunk: Buffer) => (bodyLength += chunk.length));
  req.on("end", () => {
    const seen: Seen = {
      backend: backend.name,
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength,
    };
    const body = JSON.stringify(seen);
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
};

/** Starts one real HTTP server a name on 127.0.0.1, port 0. */
export async function startBackends(names: string[]): Promise<Backend[]> {
  return Promise.all(
    names.map(
      (name) =>
        new Promise<Backend>((resolve) => {
          const backend = { name, seen: [] as Seen[], handler: undefined as Handler | undefined } as Backend;
          const server = createServer((req, res) => {
            backend.seen.push({
              backend: name,
              method: req.method ?? "",
              url: req.url ?? "",
              headers: req.headers,
              rawHeaders: req.rawHeaders,
              bodyLength: 0,
            });
            (backend.handler ?? echo)(req, res, backend);
          });
          backend.server = server;
          backend.kill = () =>
            new Promise<void>((done) => {
              server.close(() => done());
              server.closeAllConnections();
            });
          server.listen(0, "127.0.0.1", () => {
            backend.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
            resolve(backend);
          });
        }),
    ),
  );
}

export interface Harness {
  backends: Backend[];
  /** The backend called `name`; throws for a name the harness did not start, so a typo cannot pass silently. */
  backend(name: string): Backend;
  cluster: Cluster;
  source: TestSource;
  proxy: RoutingProxy;
  /** http://127.0.0.1:PORT of the proxy. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** The `key` section as a config file writes it (`{ from: "header:x-user" }`), parsed by parseConfig. */
  key?: Record<string, unknown>;
  proxy?: (config: ProxyConfig) => void;
  ring?: { partitions?: number; replicas?: number };
  observer?: Parameters<typeof createProxy>[0]["observer"];
}

/** Backends `names` behind a proxy on an ephemeral port, routed by a ring of them. */
export async function startProxy(names: string[], options: HarnessOptions = {}): Promise<Harness> {
  const backends = await startBackends(names);
  const source = new TestSource(backends.map(({ name, url }) => ({ name, url })));
  const cluster = new Cluster({ source, ring: options.ring ?? {} });
  await cluster.start();
  const config = parseConfig({ key: options.key ?? {} });
  options.proxy?.(config.proxy);
  const proxy = createProxy({ cluster, config: { key: config.key, proxy: config.proxy }, observer: options.observer });
  const { port } = await proxy.listen(0, "127.0.0.1");
  return {
    backends,
    backend(name) {
      const found = backends.find((b) => b.name === name);
      if (found === undefined) throw new Error(`no backend named ${name}`);
      return found;
    },
    cluster,
    source,
    proxy,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await proxy.close(1000);
      await Promise.all(backends.map((b) => b.kill()));
      await cluster.stop();
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  rawHeaders: string[];
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience for JSON bodies
  json: any;
}

/** One HTTP request with full control over target and headers (no keep-alive agent). */
export function send(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {},
): Promise<Reply> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, path, method: options.method ?? "GET", headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, text, json });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}
