/**
 * PostgreSQL log sequence numbers ("X/Y", two 32-bit hex halves) as numbers. Doubles hold 53 bits
 * exactly, i.e. 8 PiB of WAL, far beyond any cluster's lifetime.
 */
import { HaError } from '../../errors.js';

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function lsnToBytes(lsn: string): number {
  const m = LSN_RE.exec(lsn.trim());
  if (!m) throw new HaError('DB_FAILED', `not a PostgreSQL LSN: ${JSON.stringify(lsn)}`);
  return parseInt(m[1], 16) * 2 ** 32 + parseInt(m[2], 16);
}

export function bytesToLsn(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new HaError('DB_FAILED', `not a WAL position: ${bytes}`);
  const hi = Math.floor(bytes / 2 ** 32);
  const lo = bytes - hi * 2 ** 32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

export function isLsn(s: string): boolean {
  return LSN_RE.test(s.trim());
}

/** One line of a timeline history file: `timeline` ended (and `timeline + 1`... forked) at `switchLsn`. */
export interface TimelineFork {
  /** The parent timeline that ended at the switch point. */
  timeline: number;
  /** First position that is not part of `timeline` on the new history. */
  switchLsn: string;
  switchBytes: number;
  reason: string;
}

/** Parses a `NNNNNNNN.history` file (tab-separated: parent timeline, switch LSN, reason). */
export function parseTimelineHistory(text: string): TimelineFork[] {
  const out: TimelineFork[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [tli, lsn, ...rest] = line.split(/\s+/);
    if (!tli || !lsn || !/^\d+$/.test(tli) || !isLsn(lsn)) {
      throw new HaError('DB_FAILED', `malformed timeline history line: ${JSON.stringify(line)}`);
    }
    out.push({ timeline: Number(tli), switchLsn: lsn, switchBytes: lsnToBytes(lsn), reason: rest.join(' ') });
  }
  return out;
}

export type FollowVerdict =
  | { ok: true; reason: string }
  | { ok: false; reason: string; divergedFrom: number; divergedTo: number };

/**
 * Whether a server whose WAL ends at `localEnd` on `localTimeline` can follow a primary on
 * `primaryTimeline` with `history` without rewinding: its WAL must be a prefix of the primary's history,
 * i.e. it ends no later than the point where its own timeline ended in the primary's history.
 */
export function canFollow(
  local: { timeline: number; endBytes: number; history?: TimelineFork[] | null },
  primary: { timeline: number; history: TimelineFork[] },
): FollowVerdict {
  // Timelines are compared by their history (each fork's parent timeline and switch point), never by
  // number alone: two nodes promoted apart can both be on "timeline 2" with different pasts.
  const forked = historyMismatch(local, primary);
  if (forked) return forked;
  if (local.timeline === primary.timeline) {
    return { ok: true, reason: `same timeline ${local.timeline}: the local server is behind or level with the primary` };
  }
  const fork = primary.history.find((f) => f.timeline === local.timeline);
  if (!fork) {
    return {
      ok: false,
      reason: `local timeline ${local.timeline} is not in the primary's history (primary on timeline ${primary.timeline})`,
      divergedFrom: 0,
      divergedTo: local.endBytes,
    };
  }
  if (local.endBytes <= fork.switchBytes) {
    return {
      ok: true,
      reason: `local WAL ends at ${bytesToLsn(local.endBytes)}, at or before the fork of timeline ${local.timeline} at ${fork.switchLsn}`,
    };
  }
  return {
    ok: false,
    reason: `local WAL on timeline ${local.timeline} runs to ${bytesToLsn(local.endBytes)}, past the fork at ${fork.switchLsn}: it wrote after the primary's timeline forked`,
    divergedFrom: fork.switchBytes,
    divergedTo: local.endBytes,
  };
}

/**
 * Where the local history (the forks that led to the local timeline) disagrees with the primary's, or
 * null when every local fork is also in the primary's history at the same switch point (and, on the same
 * timeline, the primary has no fork the local node lacks). A local node on a timeline above 1 whose
 * history is unknown (`null`) cannot be checked and counts as forked.
 */
export function historyMismatch(
  local: { timeline: number; endBytes: number; history?: TimelineFork[] | null },
  primary: { timeline: number; history: TimelineFork[] },
): Extract<FollowVerdict, { ok: false }> | null {
  if (local.history === undefined) return null;
  if (local.history === null) {
    if (local.timeline <= 1) return null;
    return { ok: false, reason: `the history of local timeline ${local.timeline} is missing: it cannot be checked against the primary's`, divergedFrom: 0, divergedTo: local.endBytes };
  }
  const theirs = new Map(primary.history.map((f) => [f.timeline, f.switchBytes]));
  for (const f of local.history) {
    const at = theirs.get(f.timeline);
    if (at === undefined || at !== f.switchBytes) {
      const from = at === undefined ? f.switchBytes : Math.min(at, f.switchBytes);
      return {
        ok: false,
        reason: at === undefined
          ? `local timeline ${f.timeline} ended at ${f.switchLsn}, but timeline ${f.timeline} does not end in the primary's history: the histories forked`
          : `timeline ${f.timeline} ended at ${f.switchLsn} here but at ${bytesToLsn(at)} on the primary: the histories forked`,
        divergedFrom: from,
        divergedTo: Math.max(local.endBytes, from),
      };
    }
  }
  if (local.timeline === primary.timeline && primary.history.length !== local.history.length) {
    const mine = new Set(local.history.map((f) => f.timeline));
    const extra = primary.history.find((f) => !mine.has(f.timeline));
    const from = extra?.switchBytes ?? 0;
    return {
      ok: false,
      reason: `both are on timeline ${local.timeline}, but the primary's reached it through a fork of timeline ${extra?.timeline ?? '?'} that this node never saw: the histories forked`,
      divergedFrom: from,
      divergedTo: Math.max(local.endBytes, from),
    };
  }
  return null;
}
