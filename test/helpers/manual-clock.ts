import type { Clock } from '../../src/ports.js';

/**
 * The one clock fake for unit tests: time is what the test says (`read`, usually a variable it sets),
 * sleep returns at once, and timers fire only when the test calls `runDue()` (in due order). Wall time
 * is monotonic time plus `wallOffsetMs`.
 */
export interface ManualClock extends Clock {
  /** Fire every timer due at the current reading, earliest first (periodic ones re-armed). */
  runDue(): number;
  /** Timers armed and not cancelled. */
  pending(): number;
}

interface Timer {
  at: number;
  fn: (lateMs: number) => void;
  periodMs: number | null;
  live: boolean;
}

export function manualClock(read: () => number, wallOffsetMs = 0): ManualClock {
  const timers: Timer[] = [];
  const arm = (t: Timer) => {
    timers.push(t);
    return () => {
      t.live = false;
    };
  };
  return {
    nowMs: () => read() + wallOffsetMs,
    monotonicMs: read,
    sleep: async () => undefined,
    timeout: (ms, fn) => arm({ at: read() + ms, fn: () => fn(), periodMs: null, live: true }),
    every: (periodMs, fn) => arm({ at: read() + periodMs, fn, periodMs, live: true }),
    runDue() {
      let fired = 0;
      for (;;) {
        const now = read();
        const due = timers.filter((t) => t.live && t.at <= now).sort((x, y) => x.at - y.at)[0];
        if (!due || fired > 10_000) return fired;
        fired++;
        if (due.periodMs === null) due.live = false;
        const late = now - due.at;
        if (due.periodMs !== null) due.at += due.periodMs * Math.max(1, Math.ceil((now - due.at + 1) / due.periodMs));
        due.fn(late);
      }
    },
    pending: () => timers.filter((t) => t.live).length,
  };
}
