/**
 * The health-check rules for one member as a pure state machine: given what
 * happened (a check passed or failed, the next check fell due) and the time,
 * it returns the member's new state and what to do. `HealthCheckedSource`
 * runs the checks and timers these actions ask for and nothing else, so every
 * rule here is tested table by table without a network or a clock.
 */

/** The settings the rules read (HealthCheckOptions minus path). */
export interface HealthRules {
  /** Milliseconds between checks of a member that is in, or on its way back in. */
  interval: number;
  /** Consecutive passes that bring a member that is out back in. */
  rise: number;
  /** Consecutive failures that take a member that is in out of the ring. */
  fall: number;
  /** Milliseconds between checks of a member that is out and has not passed since. */
  reconnectInterval: number;
}

export interface HealthState {
  /** `pending` until the first check answers; the member is not reported before that. */
  status: "pending" | "up" | "down";
  /** Passes in a row (0 after a failure). */
  passes: number;
  /** Failures in a row (0 after a pass). */
  failures: number;
  /** When `status` last changed, on the source's clock. */
  since: number;
  /** What the last failed check said. */
  lastError?: string;
  /** Whether a check is running; its answer is expected before the next one is scheduled. */
  checking: boolean;
}

export type HealthEvent =
  /** The scheduled check is due. */
  | { type: "due" }
  /** The running check passed. */
  | { type: "pass" }
  /** The running check failed (refused, bad status, or no answer within the timeout). */
  | { type: "fail"; error: string };

export type HealthAction =
  /** Run one check now; its answer comes back as "pass" or "fail". */
  | { type: "check" }
  /** Send "due" after `delay` milliseconds. */
  | { type: "schedule"; delay: number }
  /** The member's status changed (or became known): report a new view. */
  | { type: "report" }
  /** Tell the operator; the shell adds the member's name, URL and counts. */
  | { type: "log"; level: "info" | "warn"; message: string };

export interface HealthStep {
  state: HealthState;
  actions: HealthAction[];
}

/** A member just seen: not reported yet, checked at once. */
export function firstHealth(now: number): HealthStep {
  return {
    state: { status: "pending", passes: 0, failures: 0, since: now, checking: true },
    actions: [{ type: "check" }],
  };
}

/**
 * One step of the rules:
 * - the first answer decides where a member starts: a pass puts it in at
 *   once, a failure keeps it out (it then needs `rise` passes);
 * - a member that is in goes out after `fall` failures in a row;
 * - a member that is out comes back after `rise` passes in a row;
 * - a member that is out is checked every `reconnectInterval` (the slow
 *   back-off for a dead member) until it passes once, then every `interval`
 *   while it rises; a member that is in is checked every `interval`.
 * Events that do not fit (a "due" while a check runs, an answer when none
 * was asked) change nothing.
 */
export function nextHealth(state: HealthState, event: HealthEvent, now: number, rules: HealthRules): HealthStep {
  if (event.type === "due") {
    if (state.checking) return { state, actions: [] };
    return { state: { ...state, checking: true }, actions: [{ type: "check" }] };
  }
  if (!state.checking) return { state, actions: [] };
  const passed = event.type === "pass";
  const next: HealthState = passed
    ? { ...state, checking: false, passes: state.passes + 1, failures: 0 }
    : { ...state, checking: false, passes: 0, failures: state.failures + 1, lastError: event.error };
  const actions: HealthAction[] = [];
  if (state.status === "pending") {
    next.status = passed ? "up" : "down";
    next.since = now;
    actions.push({ type: "report" });
    if (!passed) actions.push({ type: "log", level: "warn", message: "member fails its first health check; kept out" });
  } else if (state.status === "up" && next.failures >= rules.fall) {
    next.status = "down";
    next.since = now;
    actions.push({ type: "report" }, { type: "log", level: "warn", message: "member failed its health checks; out" });
  } else if (state.status === "down" && next.passes >= rules.rise) {
    next.status = "up";
    next.since = now;
    actions.push(
      { type: "report" },
      { type: "log", level: "info", message: "member passes its health checks; back in" },
    );
  }
  const delay = next.status === "down" && next.passes === 0 ? rules.reconnectInterval : rules.interval;
  actions.unshift({ type: "schedule", delay });
  return { state: next, actions };
}
