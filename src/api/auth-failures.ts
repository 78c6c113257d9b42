import type { EventInput } from '../events/bus.js';

interface Window {
  startedMs: number;
  /** Failures in this window (the first one was reported when the window opened). */
  count: number;
  /** Failures not reported yet. */
  unreported: number;
  lastReason: string;
  timer: NodeJS.Timeout | null;
}

/**
 * Authentication failures per source address: at most one event per source, kind and minute (the
 * first failure at once, the rest as one event with their count when the minute ends), and a failure
 * budget per minute beyond which refused requests answer 429 and the connection is closed. A request
 * with valid credentials is never refused by the budget: the peer or an operator behind the same
 * address as an attacker keeps working.
 */
export class AuthFailures {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly budget: number;
  private readonly maxSources: number;

  constructor(
    private readonly emit: (e: EventInput) => void,
    opts: { windowMs?: number; budget?: number; maxSources?: number; nowMs?: () => number } = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.budget = opts.budget ?? 20;
    this.maxSources = opts.maxSources ?? 1024;
    this.now = opts.nowMs ?? Date.now;
  }

  private readonly now: () => number;

  /** Record one refused request; emits an event only for the first in a source's minute. */
  record(kind: 'admin' | 'peer', source: string, reason: string, what: string): void {
    const now = this.now();
    let key = `${kind} ${source}`;
    if (!this.windows.has(key) && this.windows.size >= this.maxSources) key = `${kind} (other sources)`;
    let w = this.windows.get(key);
    if (w && now - w.startedMs >= this.windowMs) w = this.close(key, w);
    if (!w) {
      w = { startedMs: now, count: 1, unreported: 0, lastReason: reason, timer: null };
      this.windows.set(key, w);
      w.timer = setTimeout(() => this.close(key, this.windows.get(key)), this.windowMs).unref();
      this.emit(this.event(kind, source, `${what} from ${source}: ${reason}`, { source, reason, count: 1 }));
      return;
    }
    w.count++;
    w.unreported++;
    w.lastReason = reason;
  }

  /** True when the source has used up its failure budget for this minute. */
  limited(kind: 'admin' | 'peer', source: string): boolean {
    const w = this.windows.get(`${kind} ${source}`);
    return !!w && this.now() - w.startedMs < this.windowMs && w.count > this.budget;
  }

  /**
   * End a source's minute: report the failures not reported yet as one event and open a quiet window
   * (no event of its own) so that a steady stream of failures yields one event a minute.
   */
  private close(key: string, w: Window | undefined, reopen = true): Window | undefined {
    if (!w) return undefined;
    if (w.timer) clearTimeout(w.timer);
    this.windows.delete(key);
    if (w.unreported > 0) {
      const [kind, ...rest] = key.split(' ');
      const source = rest.join(' ');
      this.emit(
        this.event(kind as 'admin' | 'peer', source, `${w.unreported} more authentication failure(s) from ${source} in the last minute (last: ${w.lastReason})`, {
          source,
          reason: w.lastReason,
          count: w.unreported,
        }),
      );
      if (reopen) {
        const next: Window = { startedMs: this.now(), count: 0, unreported: 0, lastReason: w.lastReason, timer: null };
        next.timer = setTimeout(() => this.close(key, this.windows.get(key)), this.windowMs).unref();
        this.windows.set(key, next);
        return next;
      }
    }
    return undefined;
  }

  private event(kind: 'admin' | 'peer', _source: string, message: string, details: Record<string, unknown>): EventInput {
    return { type: kind === 'admin' ? 'admin_auth_failed' : 'peer_auth_failed', severity: 'warning', message: `rejected ${message}`, details };
  }

  /** Report what is pending and stop the timers. */
  closeAll(): void {
    for (const [key, w] of [...this.windows]) this.close(key, w, false);
  }
}
