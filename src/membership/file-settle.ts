/**
 * When the file source reads its file, as a pure state machine. A change is
 * read only once the file has stood still for `settle` milliseconds (the same
 * size and modification time across two looks that far apart), and the read
 * counts only if the file did not change while it was read. A writer that
 * pauses mid-file therefore restarts the wait instead of having half a
 * member list applied. FileSource runs the stat calls, reads and timers
 * these actions ask for.
 */

/** What the file looked like: size, mtime and inode, or why it could not be looked at. */
export type FileStamp = string;

export interface SettleState {
  /** A stamp waiting to prove itself stable, and when it was first seen. */
  candidate: { stamp: FileStamp; seen: number } | undefined;
  /** The stamp last read (applied or rejected); seeing it again needs no read. */
  done: FileStamp | undefined;
  /** Whether a read is running; its result comes back as "read". */
  reading: boolean;
}

export type SettleEvent =
  /** fs.watch or the poll timer says: look at the file. */
  | { type: "look" }
  /** A look's result. */
  | { type: "stamp"; stamp: FileStamp }
  /** The settle timer fired. */
  | { type: "due" }
  /** A read finished: the stamps taken just before and just after it. */
  | { type: "read"; before: FileStamp; after: FileStamp };

export type SettleAction =
  /** Take the file's stamp; it comes back as "stamp". */
  | { type: "stat" }
  /** Send "due" after `delay` ms, replacing any earlier settle timer. */
  | { type: "schedule"; delay: number }
  /** Read the file, stamping it before and after; comes back as "read". */
  | { type: "read" }
  /** The read content is whole: parse it and apply it (or report it unusable). */
  | { type: "use" };

export interface SettleStep {
  state: SettleState;
  actions: SettleAction[];
}

export const initialSettle: SettleState = { candidate: undefined, done: undefined, reading: false };

/**
 * At start the file is read at once: there is no earlier view to protect,
 * and start() should not wait a settle period. It is used if it held still
 * while read (and parses); otherwise it waits to settle like any change.
 */
export function startSettle(): SettleStep {
  return { state: { ...initialSettle, reading: true }, actions: [{ type: "read" }] };
}

/** One step of the settle rule with `settle` ms of stillness required. */
export function nextSettle(state: SettleState, event: SettleEvent, now: number, settle: number): SettleStep {
  switch (event.type) {
    case "look":
    case "due":
      return { state, actions: state.reading ? [] : [{ type: "stat" }] };
    case "stamp": {
      if (state.reading) return { state, actions: [] };
      const { candidate } = state;
      if (candidate === undefined || candidate.stamp !== event.stamp) {
        // Nothing new since the last read: nothing to do.
        if (event.stamp === state.done) return { state: { ...state, candidate: undefined }, actions: [] };
        // Something changed (again): the wait starts over.
        return {
          state: { ...state, candidate: { stamp: event.stamp, seen: now } },
          actions: [{ type: "schedule", delay: settle }],
        };
      }
      const waited = now - candidate.seen;
      if (waited < settle) return { state, actions: [{ type: "schedule", delay: settle - waited }] };
      return { state: { ...state, reading: true }, actions: [{ type: "read" }] };
    }
    case "read": {
      if (!state.reading) return { state, actions: [] };
      const { candidate } = state;
      // No candidate: the read at start, which needs only to have held still.
      if (event.before === event.after && (candidate === undefined || event.after === candidate.stamp)) {
        return { state: { candidate: undefined, done: event.after, reading: false }, actions: [{ type: "use" }] };
      }
      // It changed under the read: that content is not trusted; wait for the new version to settle.
      return {
        state: { ...state, reading: false, candidate: { stamp: event.after, seen: now } },
        actions: [{ type: "schedule", delay: settle }],
      };
    }
  }
}
