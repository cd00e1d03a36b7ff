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
