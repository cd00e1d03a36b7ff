/**
 * Demo backends for `npm start` with no config: small HTTP servers on
 * loopback that answer every request with their name and the key they
 * received, so routing can be seen with curl alone.
 */
import { createServer, type Server } from "node:http";
import { requestPath } from "../proxy/key.ts";
import { listen } from "../utils/listen.ts";

export interface DemoBackend {
  name: string;
  url: string;
  close(): Promise<void>;
}

export interface DemoOptions {
  /** Member names, one backend each. */
  names?: string[];
  host?: string;
  /** First port; the others follow it. 0 (the default) picks free ports. */
  basePort?: number;
}

/** Starts the backends; resolves once all listen. */
export async function startDemoBackends(options: DemoOptions = {}): Promise<DemoBackend[]> {
  const names = options.names ?? ["demo-a", "demo-b", "demo-c"];
  const host = options.host ?? "127.0.0.1";
  const basePort = options.basePort ?? 0;
  return Promise.all(names.map((name, i) => startOne(name, host, basePort === 0 ? 0 : basePort + i)));
}

async function startOne(name: string, host: string, port: number): Promise<DemoBackend> {
  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    let key: string;
    try {
      key = requestPath(req.url ?? "/");
    } catch {
      key = req.url ?? "/";
    }
    const body = JSON.stringify({ backend: name, key, method: req.method, url: req.url });
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
    req.resume();
  });
  const { port: bound } = await listen(server, port, host);
  return {
    name,
    url: `http://${host}:${bound}`,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
