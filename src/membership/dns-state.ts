/**
 * The DNS source's polling and `emptyAfter` rule as a pure state machine:
 * one lookup at a time, the next one `interval` after the last ended, and an
 * empty answer for a name that had records believed only after `emptyAfter`
 * in a row. DnsSource runs the lookups and the timer these actions ask for.
 */
import type { Member } from "./source.ts";

export interface DnsRules {
  /** Milliseconds between the end of one lookup and the start of the next. */
  interval: number;
  /** Empty answers in a row, after a view with members, before the view empties. */
  emptyAfter: number;
}

export interface DnsState {
  /** Whether the last reported view had members: empty answers are then doubted. */
  hadMembers: boolean;
  /** Empty answers in a row since the last view with members. */
  emptyStreak: number;
  /** Whether a lookup is running. */
  looking: boolean;
}

export type DnsEvent =
  /** The next poll is due. */
  | { type: "due" }
  /** The lookup answered with these members; none with `cause` for NXDOMAIN or no data. */
  | { type: "answer"; members: Member[]; cause?: Error }
  /** The lookup failed: timeout, refused, server failure. */
  | { type: "failed"; error: Error };

export type DnsAction =
  /** Look the name up; the result comes back as "answer" or "failed". */
  | { type: "lookup" }
  /** Send "due" after `delay` ms. */
  | { type: "schedule"; delay: number }
  /** Report this view. */
  | { type: "snapshot"; members: Member[] }
  /** Report the source down: the lookup failed, or an empty answer is doubted (`streak` of `emptyAfter`). */
  | { type: "down"; error: Error }
  | { type: "doubt"; streak: number; cause?: Error | undefined };

export interface DnsStep {
  state: DnsState;
  actions: DnsAction[];
}

/** Before the first lookup, which starts at once. */
export function firstDns(): DnsStep {
  return { state: { hadMembers: false, emptyStreak: 0, looking: true }, actions: [{ type: "lookup" }] };
}

/** One step of the rules. Answers that nobody asked for change nothing. */
export function nextDns(state: DnsState, event: DnsEvent, rules: DnsRules): DnsStep {
  if (event.type === "due") {
    if (state.looking) return { state, actions: [] };
    return { state: { ...state, looking: true }, actions: [{ type: "lookup" }] };
  }
  if (!state.looking) return { state, actions: [] };
  const schedule: DnsAction = { type: "schedule", delay: rules.interval };
  if (event.type === "failed") {
    return { state: { ...state, looking: false }, actions: [{ type: "down", error: event.error }, schedule] };
  }
  const { members } = event;
  if (members.length > 0) {
    return {
      state: { hadMembers: true, emptyStreak: 0, looking: false },
      actions: [{ type: "snapshot", members }, schedule],
    };
  }
  if (state.hadMembers && state.emptyStreak + 1 < rules.emptyAfter) {
    const streak = state.emptyStreak + 1;
    return {
      state: { ...state, emptyStreak: streak, looking: false },
      actions: [{ type: "doubt", streak, cause: event.cause }, schedule],
    };
  }
  return {
    state: { hadMembers: false, emptyStreak: 0, looking: false },
    actions: [{ type: "snapshot", members: [] }, schedule],
  };
}
