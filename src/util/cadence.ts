/**
 * Periodic timers on a shared grid. A timer with period P fires at the instants `phase + k·P` of
 * wall-clock time (Date.now), with one phase for the whole process, so every periodic timer whose
 * period divides another's fires in the same event-loop wake-up: the heartbeat tick, the database
 * status read, the archive shipper and the service probes cost one wake-up instead of one each.
 *
 * The phase is random per process: two sidecars and a witness sharing a host do not all wake in the
 * same millisecond. The grid only chooses the phase. A clock step moves at most one period: a delay is
 * never longer than the period plus the minimum gap, and never shorter than that gap.
 */

/** This process's grid phase (ms). */
export const PROCESS_GRID_PHASE_MS = Math.floor(Math.random() * 3_600_000);

/**
 * Milliseconds from `nowMs` to the next grid point of `periodMs` that lies at least `minGapMs` ahead
 * (default: a quarter of the period, so a timer that fires a little early does not fire twice).
 */
export function gridDelayMs(periodMs: number, nowMs: number, minGapMs = periodMs / 4, phaseMs = PROCESS_GRID_PHASE_MS): number {
  if (!(periodMs > 0)) throw new RangeError(`period must be positive, got ${periodMs}`);
  const gap = Math.min(Math.max(0, minGapMs), periodMs);
  const t = nowMs - phaseMs;
  let delay = periodMs - (((t % periodMs) + periodMs) % periodMs);
  while (delay < gap) delay += periodMs;
  return delay;
}

export interface GridTimer {
  stop(): void;
  /** Wall-clock time the next firing is due at (ms), or null when stopped. */
  readonly dueAt: number | null;
}

/**
 * Call `fn` at every grid point of `periodMs` until stopped. `fn` receives how late the timer fired
 * (ms, 0 when on time). The first call comes at the next grid point, not at once.
 */
export function everyOnGrid(
  periodMs: number,
  fn: (lateMs: number) => void,
  opts: { unref?: boolean; now?: () => number; phaseMs?: number } = {},
): GridTimer {
  const now = opts.now ?? Date.now;
  let timer: NodeJS.Timeout | null = null;
  let dueAt: number | null = null;
  let stopped = false;
  const arm = () => {
    const t = now();
    const delay = gridDelayMs(periodMs, t, periodMs / 4, opts.phaseMs);
    dueAt = t + delay;
    timer = setTimeout(fire, delay);
    if (opts.unref) timer.unref();
  };
  const fire = () => {
    const late = Math.max(0, now() - (dueAt ?? 0));
    arm();
    fn(late);
  };
  arm();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      dueAt = null;
    },
    get dueAt() {
      return stopped ? null : dueAt;
    },
  };
}
