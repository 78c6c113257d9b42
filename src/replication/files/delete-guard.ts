/**
 * The delete guard shared by tree sync and repository sync: pure rules deciding whether one change set
 * may delete entries from the copy, plus the record of recent deletes that bounds them over a sliding
 * window. No I/O here; time comes in as an argument.
 */

export interface DeleteLimits {
  /** Largest share of the copy one change set, and all change sets of one window together, may delete. */
  maxDeleteFraction: number;
  /** Deletes always allowed per change set and per window whatever the fraction (small trees). */
  minDeletes: number;
  /** Hard cap on deletes within one window, whatever the size of the copy. */
  maxDeletesPerWindow: number;
  /** Let an empty source delete everything (normally a sign of a wrong or unmounted source). */
  allowEmptySource: boolean;
}

export interface DeleteRequest {
  /** The source holds nothing (or is not there): an empty or vanished source never deletes. */
  sourceEmpty: boolean;
  /** Entries the copy holds now. */
  copyCount: number;
  /** Entries this change set would delete from the copy. */
  deletes: number;
  /** Entries already deleted within the current window. */
  recentDeletes: number;
}

export type DeleteRule = 'empty-source' | 'fraction' | 'window';

export type DeleteVerdict = { ok: true } | { ok: false; rule: DeleteRule; allowed: number; message: string };

/** Whether the change set may delete; `unit` names the entries in the message ("file", "object"). */
export function checkDeletes(r: DeleteRequest, l: DeleteLimits, unit = 'entry'): DeleteVerdict {
  if (r.deletes <= 0) return { ok: true };
  const plural = (n: number) => `${n} ${n === 1 ? unit : unit === 'entry' ? 'entries' : `${unit}s`}`;
  if (r.sourceEmpty) {
    if (l.allowEmptySource) return { ok: true };
    return {
      ok: false,
      rule: 'empty-source',
      allowed: 0,
      message: `the source is empty or missing but the copy holds ${plural(r.copyCount)}: refusing to delete ${plural(r.deletes)} (check that the source is mounted and is the right one; allowEmptySource lets an empty source empty the copy)`,
    };
  }
  const now = Math.max(l.minDeletes, Math.floor(r.copyCount * l.maxDeleteFraction));
  if (r.deletes > now) {
    return {
      ok: false,
      rule: 'fraction',
      allowed: now,
      message: `one change would delete ${plural(r.deletes)} of ${r.copyCount}, more than maxDeleteFraction ${l.maxDeleteFraction} allows (${now}): check the source, then raise maxDeleteFraction if the deletions are intended`,
    };
  }
  // The window's base is the copy as it was before the window's deletes, so a trickle is measured
  // against the size it started from, not against what is left.
  const base = r.copyCount + r.recentDeletes;
  const inWindow = Math.min(l.maxDeletesPerWindow, Math.max(l.minDeletes, Math.floor(base * l.maxDeleteFraction)));
  if (r.recentDeletes + r.deletes > inWindow) {
    return {
      ok: false,
      rule: 'window',
      allowed: Math.max(0, inWindow - r.recentDeletes),
      message: `${plural(r.recentDeletes)} deleted within the delete window already; ${r.deletes} more would exceed the ${inWindow} allowed per window (maxDeleteFraction ${l.maxDeleteFraction} of ${base}, at most maxDeletesPerWindow ${l.maxDeletesPerWindow}): the deletes wait until the window has room`,
    };
  }
  return { ok: true };
}

/** Deletes applied recently, by monotonic time: the sliding window of the guard. */
export class DeleteWindow {
  private entries: Array<{ at: number; n: number }> = [];

  constructor(readonly windowMs: number) {}

  /** Entries deleted within the window ending at `now`. */
  recent(now: number): number {
    this.expire(now);
    return this.entries.reduce((s, e) => s + e.n, 0);
  }

  add(now: number, n: number): void {
    if (n > 0) this.entries.push({ at: now, n });
  }

  /** When the oldest delete in the window leaves it (monotonic ms), or null when the window is empty. */
  nextFreeAt(now: number): number | null {
    this.expire(now);
    return this.entries.length ? this.entries[0].at + this.windowMs : null;
  }

  private expire(now: number): void {
    while (this.entries.length && this.entries[0].at + this.windowMs <= now) this.entries.shift();
  }
}
