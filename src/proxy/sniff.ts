/**
 * The first byte on a TLS listener: a TLS connection opens with a handshake
 * record (0x16) and goes on to the TLS server; anything else is most likely
 * plain HTTP sent to the HTTPS port, which gets a 400 saying so and is
 * closed, as nginx answers ("The plain HTTP request was sent to HTTPS
 * port"), instead of an empty reply the client cannot explain.
 */
import type { Socket } from "node:net";
import type { Server as TlsServer } from "node:tls";
import type { Deadlines, Timed } from "./deadlines.ts";
import { errorResponse, messages } from "./reply.ts";

/** A TLS record of type handshake (RFC 8446 §5.1). */
const handshake = 0x16;
/** How long the answer to a plain-HTTP client may linger before its socket is destroyed. */
const lingerMs = 1_000;

export function sniffTls(socket: Socket, tls: TlsServer, deadlines: Deadlines, firstByteMs: number): void {
  // A connection that sends nothing is dropped after `firstByteMs` (the head timeout), as a plain one would be.
  const timed: Timed = { deadline: deadlines.now() + firstByteMs, expire: () => socket.destroy() };
  deadlines.add(timed);
  const done = () => deadlines.delete(timed);
  socket.on("error", () => {});
  socket.once("close", done);
  socket.once("data", (chunk: Buffer) => {
    socket.pause();
    if (chunk[0] === handshake) {
      done();
      socket.off("close", done);
      // The TLS socket reads what is already buffered first.
      socket.unshift(chunk);
      tls.emit("connection", socket);
      return;
    }
    socket.end(errorResponse(400, { error: "https_required", message: messages.https_required }, true), "latin1");
    // What else the client sends is read and dropped until it closes, or the linger deadline.
    socket.on("end", () => socket.destroy());
    socket.resume();
    timed.deadline = deadlines.now() + lingerMs;
  });
}

/** The client connection preface of HTTP/2 (RFC 9113 §3.4): an h2c client with prior knowledge opens with it. */
const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * The first bytes on a cleartext listener with HTTP/2 on: the h2 preface goes to `h2`, anything else (the
 * first byte that differs from it) to `h1`, with the bytes read so far put back. Only bytes that could
 * still be the preface are waited for, so an HTTP/1.1 request is told apart on its first read (only
 * `PRI ` could take a second one); a connection that sends nothing is dropped after `firstByteMs`.
 */
export function sniffPreface(
  socket: Socket,
  h1: (socket: Socket) => void,
  h2: (socket: Socket) => void,
  deadlines: Deadlines,
  firstByteMs: number,
): void {
  const timed: Timed = { deadline: deadlines.now() + firstByteMs, expire: () => socket.destroy() };
  deadlines.add(timed);
  let seen: Buffer | undefined;
  const done = () => deadlines.delete(timed);
  const ignore = () => {};
  // A client that ends before it said anything useful is gone.
  const ended = () => socket.destroy();
  socket.on("error", ignore);
  socket.once("close", done);
  socket.once("end", ended);
  const read = (chunk: Buffer) => {
    const bytes = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(bytes.length, preface.length);
    const matches = bytes.compare(preface, 0, n, 0, n) === 0;
    if (matches && n < preface.length) {
      seen = bytes;
      return;
    }
    socket.pause();
    socket.off("data", read);
    socket.off("close", done);
    socket.off("error", ignore);
    socket.off("end", ended);
    done();
    socket.unshift(bytes);
    if (matches) h2(socket);
    else {
      h1(socket);
      socket.resume();
    }
  };
  socket.on("data", read);
}
