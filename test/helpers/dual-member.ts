/**
 * A member that speaks HTTP/1.1 and h2c (prior knowledge) on one port, the
 * way it is told by each connection's first bytes, and answers every request
 * with JSON saying which protocol and which connection it came on. A test
 * switches a member's declared protocol and sees, from the member's side,
 * the proxy change how it talks and on which connection.
 */
import { once } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer, type Socket } from "node:net";

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const connectionId = Symbol("connection id");

export interface DualMember {
  name: string;
  url: string;
  /** Every connection the member accepted, by id (1, 2, …): whether it is still open. */
  readonly connections: Map<number, { open: boolean }>;
  close(): Promise<void>;
}

export async function startDualMember(name: string): Promise<DualMember> {
  const connections = new Map<number, { open: boolean }>();
  // A property rather than a WeakMap: an h2 request's socket is node's proxy of the real one, which forwards reads.
  const idOf = (socket: unknown) => (socket as Record<symbol, number> | undefined)?.[connectionId] ?? 0;
  const answer = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    req.resume();
    req.on("end", () => {
      const body = JSON.stringify({
        backend: name,
        protocol: req.httpVersion === "2.0" ? "h2" : "http/1.1",
        connection: idOf(req.socket),
        url: req.url,
      });
      res.setHeader("content-type", "application/json");
      res.end(body);
    });
  };
  const h1 = createHttpServer(answer);
  // The member never closes an idle connection itself: one that closes was closed by the proxy.
  h1.keepAliveTimeout = 0;
  const h2 = createH2Server(answer);
  let next = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const id = ++next;
    (socket as unknown as Record<symbol, number>)[connectionId] = id;
    connections.set(id, { open: true });
    sockets.add(socket);
    socket.on("close", () => {
      (connections.get(id) as { open: boolean }).open = false;
      sockets.delete(socket);
    });
    socket.once("readable", () => {
      // Enough bytes to tell the preface from a request line; both protocols read them again.
      const head: Buffer | null = socket.read(Math.min(preface.length, socket.readableLength)) ?? socket.read();
      if (head === null) return;
      socket.unshift(head);
      if (preface.subarray(0, head.length).equals(head)) h2.emit("connection", socket);
      else h1.emit("connection", socket);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
