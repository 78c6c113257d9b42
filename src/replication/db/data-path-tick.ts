import { everyOnGrid, type GridTimer } from '../../util/cadence.js';

/** How often the local server's status is read (for /status, the standby's catch-up and the sync guard). */
export const STATUS_TICK_MS = 1000;

/**
 * The timing of the database data path's status tick (DbDataPath): `once` runs on the 1 s wall-clock
 * grid, never two at a time, and ahead of the grid when the sync guard's degrade falls due before the
 * next grid tick. What a tick does stays with DbDataPath.
 */
export class StatusTicker {
  private tickTimer: GridTimer | null = null;
  /** A read ahead of the grid, when the sync guard's degrade falls due before the next grid tick. */
  private dueTimer: NodeJS.Timeout | null = null;
  private ticking = false;
  private closed = false;

  constructor(
    private readonly o: {
      /** One status tick. */
      once: () => Promise<void>;
      /** Milliseconds until the sync guard's degrade falls due; null when nothing is due (or not primary). */
      dueInMs: () => number | null;
    },
  ) {
    // On the 1 s wall-clock grid, so the status read shares the heartbeat tick's wake-up.
    this.tickTimer = everyOnGrid(STATUS_TICK_MS, () => void this.tick(), { unref: true });
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.o.once();
    } finally {
      this.ticking = false;
    }
    this.scheduleDue();
  }

  /** A hung or gone standby costs commits degradeAfterMs plus one status read, not plus a grid period. */
  private scheduleDue(): void {
    if (this.dueTimer || this.closed) return;
    const due = this.o.dueInMs();
    if (due === null || due >= STATUS_TICK_MS) return;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = null;
      void this.tick();
    }, Math.max(10, due));
    this.dueTimer.unref();
  }

  /** No more ticks (a tick in flight finishes but schedules nothing). */
  stop(): void {
    this.closed = true;
    this.tickTimer?.stop();
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueTimer = null;
  }
}
