/**
 * The process's loggers, made once at the edge by `serve`: the log on stderr
 * (JSON, or pino-pretty's lines on a terminal) and the access log on stdout
 * (one JSON object a request). Components get the logger and never print.
 */
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from "pino";
import type { Config } from "../config.ts";
import type { AccessRecord } from "../proxy/observer.ts";
import { accessLine, accessLineBound, writeAccessLine } from "./access-line.ts";

export interface Logging {
  logger: Logger;
  /** Sets the level of the logger and every child made from it (a reload's `log.level`). */
  setLevel(level: LevelWithSilent): void;
}

export interface LoggingOptions {
  /** Where lines go; default stderr, written synchronously so nothing is lost at exit. */
  destination?: DestinationStream;
  /** Whether stderr is a terminal, for `format: auto`; default `process.stderr.isTTY`. */
  isTTY?: boolean;
}

/** The format `auto` stands for: pretty on a terminal, JSON for machines. */
export function logFormat(format: Config["log"]["format"], isTTY: boolean): "json" | "pretty" {
  return format === "auto" ? (isTTY ? "pretty" : "json") : format;
}

/**
 * The logger `log` describes. JSON lines carry an ISO time, the level by name
 * and the pid (several workers share one stderr); pretty lines show the same.
 */
export async function createLogging(log: Config["log"], options: LoggingOptions = {}): Promise<Logging> {
  const children = new Set<WeakRef<Logger>>();
  const base: pino.LoggerOptions = {
    level: log.level,
    // pino calls onChild for children of children too, so a reload reaches every component.
    onChild: (child) => {
      children.add(new WeakRef(child));
    },
  };
  const format = logFormat(log.format, options.isTTY ?? process.stderr.isTTY === true);
  let logger: Logger;
  if (format === "pretty") {
    // Loaded only for people at a terminal: JSON logging pays nothing for it.
    const { default: pretty } = await import("pino-pretty");
    const stream =
      options.destination ??
      pretty({ destination: 2, sync: true, colorize: options.destination === undefined, ignore: "hostname" });
    logger = pino({ ...base, base: { pid: process.pid } }, stream);
  } else {
    logger = pino(
      {
        ...base,
        base: { pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      options.destination ?? pino.destination({ fd: 2, sync: true }),
    );
  }
  return {
    logger,
    setLevel(level) {
      logger.level = level;
      for (const ref of children) {
        const child = ref.deref();
        if (child === undefined) children.delete(ref);
        else child.level = level;
      }
    },
  };
}

/** Writes access records; `close` writes out what is buffered and stops the flush timer. */
export interface AccessLog {
  write(record: AccessRecord): void;
  close(): void;
}

/**
 * The access log: one JSON line a request, `{"time", ...record}`, sampled at
 * `access.sample`, written through a buffered sonic-boom on stdout (no pino
 * child: nothing but the record is wanted, and a level and pid per line would
 * be noise). The buffer is flushed every `flushMs`, so a quiet proxy's lines
 * still show up promptly.
 *
 * On stdout the lines are written as bytes (`byteAccessLog`): each straight
 * into a batch buffer, no string made for it. Into another `destination` (a
 * worker's channel to the primary, tests) they go as text built by
 * `accessLine`. Either way they are handed on in batches: once `batchChars`
 * have gathered, and at the end of the event-loop turn that wrote them. A
 * string-mode sonic-boom measures the byte length of its pending text on
 * every write, so a write per line cost more than building the line.
 * sonic-boom writes once 32 KB have gathered (a write to stdout goes
 * through libuv's thread pool: a thread hop and a syscall per write, so
 * fewer and larger writes; 4 KB cost about a tenth of the busy time).
 */
export function createAccessLog(
  access: Config["access"],
  destination?: DestinationStream & { flush?(): void; flushSync?(): void },
  random: () => number = Math.random,
  flushMs = 1000,
  batchChars = 16 * 1024,
): AccessLog | undefined {
  if (!access.log) return undefined;
  if (destination === undefined) {
    const stdout = pino.destination({
      fd: 1,
      sync: false,
      contentMode: "buffer",
      minLength: 32 * 1024,
      maxWrite: 64 * 1024,
    });
    const timer = setInterval(() => stdout.flush(), flushMs).unref();
    const log = byteAccessLog(access.sample, stdout as unknown as ByteSink, random, batchChars);
    return {
      write: log.write,
      close() {
        clearInterval(timer);
        try {
          log.close();
          stdout.flushSync();
        } catch {
          // stdout gone (a closed pipe): nothing left to save.
        }
      },
    };
  }
  const { sample } = access;
  const sink = destination;
  let pending = "";
  let scheduled = false;
  const handOff = () => {
    if (pending === "") return;
    const text = pending;
    pending = "";
    sink.write(text);
  };
  const endOfTurn = () => {
    scheduled = false;
    handOff();
  };
  return {
    write(record) {
      if (sample < 1 && random() >= sample) return;
      pending += accessLine(record, Date.now());
      if (pending.length >= batchChars) handOff();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(endOfTurn);
      }
    },
    close() {
      try {
        handOff();
        sink.flushSync?.();
      } catch {
        // stdout gone (a closed pipe): nothing left to save.
      }
    },
  };
}

/** Where `byteAccessLog` hands its batches: it keeps each buffer it is given until written. */
export interface ByteSink {
  write(bytes: Buffer): unknown;
}

/** Bytes of line buffer allocated at a time: lines are written into it one after another. */
const lineBufferBytes = 64 * 1024;

/**
 * Access lines written as UTF-8 straight into a line buffer
 * (`writeAccessLine`), handed to `sink` as slices of it: once `batchBytes`
 * have gathered and at the end of the turn. A slice handed on is never
 * written over (the sink may still hold it): the next lines go after it, and
 * a full buffer is replaced by a new one, not reused. Per request nothing is
 * allocated; per batch, one slice, and a new 64 KB buffer every 64 KB.
 */
export function byteAccessLog(
  sample: number,
  sink: ByteSink,
  random: () => number = Math.random,
  batchBytes = 16 * 1024,
): AccessLog {
  let buffer = Buffer.allocUnsafeSlow(lineBufferBytes);
  /** Written and not handed on: buffer[from, to). */
  let from = 0;
  let to = 0;
  let scheduled = false;
  const handOff = () => {
    if (to === from) return;
    sink.write(buffer.subarray(from, to));
    from = to;
  };
  const endOfTurn = () => {
    scheduled = false;
    handOff();
  };
  return {
    write(record) {
      if (sample < 1 && random() >= sample) return;
      const need = accessLineBound(record);
      if (to + need > buffer.length) {
        handOff();
        buffer = Buffer.allocUnsafeSlow(Math.max(lineBufferBytes, need));
        from = 0;
        to = 0;
      }
      to = writeAccessLine(record, Date.now(), buffer, to);
      if (to - from >= batchBytes) handOff();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(endOfTurn);
      }
    },
    close: handOff,
  };
}
