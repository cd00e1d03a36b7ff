/**
 * The one way tests wait: for a condition, with a deadline, and an error that
 * says what was awaited. Used for real sockets and real programs; rules about
 * time are tested on a ManualClock instead, with no waiting at all.
 */
export interface UntilOptions {
  /** What the test waits for, for the error message: "member b in the ring". */
  what: string;
  /** Milliseconds before giving up. Generous: a deadline guards against hangs, it asserts no speed. */
  timeout?: number;
  /** Milliseconds between checks. */
  interval?: number;
}

/** Resolves with the condition's first truthy value; rejects naming `what` after the deadline. */
export async function until<T>(condition: () => T | Promise<T>, options: UntilOptions): Promise<NonNullable<T>> {
  const timeout = options.timeout ?? 30_000;
  const interval = options.interval ?? 10;
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const why = last === undefined ? "" : ` (last error: ${(last as Error)?.message ?? last})`;
      throw new Error(`timed out after ${timeout} ms waiting for ${options.what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Resolves with the promise's value, or rejects naming `what` after `timeout` ms. */
export async function within<T>(promise: Promise<T>, options: UntilOptions): Promise<T> {
  const timeout = options.timeout ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${timeout} ms waiting for ${options.what}`)),
          timeout,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
