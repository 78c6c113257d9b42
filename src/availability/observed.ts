/**
 * Observed availability from the event history: outages are service incidents (service_failed …
 * service_recovered) and failovers (their measured downtime). Overlapping outages count once, since
 * the question is how long the service was unavailable, not how many parts were broken.
 */
import type { HaEvent } from '../ports.js';

export interface ObservedIncident {
  kind: 'service' | 'failover';
  /** Service name for service incidents, the node for failovers. */
  subject: string;
  startMs: number;
  /** End of the outage; for incidents still open at the end of the history, the end of the window. */
  endMs: number;
  open: boolean;
}

export interface ObservedAvailability {
  windowStart: string | null;
  windowEnd: string | null;
  windowHours: number;
  /** Number of outages (incidents and failovers). */
  failures: number;
  downtimeHours: number;
  /** (window − downtime) / window; null for an empty window. */
  availability: number | null;
  /** Mean up time between outages, hours; null without failures. */
  mttfHours: number | null;
  /** Mean outage length, hours; null without failures. */
  mttrHours: number | null;
  incidents: ObservedIncident[];
}

/** Detail keys a failover event may use for its measured client-visible downtime, in ms. */
const FAILOVER_DURATION_KEYS = ['downtimeMs', 'unavailableMs', 'durationMs', 'failoverMs', 'totalMs'];
const FAILOVER_TYPES = new Set(['failover', 'takeover']);

function numberIn(details: Record<string, unknown> | undefined, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = details?.[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  }
  return undefined;
}

/**
 * A sidecar's own failover event gives no client-measured downtime but its phases: the peer went silent
 * `detect_ms` before it was declared dead, and the VIP was up `since_peer_dead_ms` after that (else the
 * sum of the phases it reports).
 */
function takeoverGapMs(details: Record<string, unknown> | undefined): number | undefined {
  const n = (k: string) => numberIn(details, [k]);
  const sinceDead = n('since_peer_dead_ms');
  if (sinceDead !== undefined) return (n('detect_ms') ?? 0) + sinceDead;
  const phases = ['detect_ms', 'election_ms', 'promote_ms', 'vip_ms'].map(n).filter((x): x is number => x !== undefined);
  return phases.length ? phases.reduce((a, b) => a + b, 0) : undefined;
}

function subjectOf(e: HaEvent): string {
  const s = e.details?.service;
  return typeof s === 'string' ? s : e.node;
}

/** Length of the union of intervals. */
function unionLength(intervals: Array<[number, number]>): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [s, e] of sorted) {
    if (s > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else if (e > curEnd) curEnd = e;
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

/**
 * Estimates MTTF, MTTR and availability from recorded events. The window runs from the first to the
 * last event unless given; pass the real observation period when the history is sparse.
 */
export function fromHistory(
  events: HaEvent[],
  window: { startMs?: number; endMs?: number } = {},
): ObservedAvailability {
  const timed = events
    .map((e) => ({ e, t: Date.parse(e.time) }))
    .filter((x) => Number.isFinite(x.t))
    .sort((a, b) => a.t - b.t);
  const startMs = window.startMs ?? timed[0]?.t;
  const endMs = window.endMs ?? timed[timed.length - 1]?.t;
  const incidents: ObservedIncident[] = [];
  const open = new Map<string, number>();
  for (const { e, t } of timed) {
    if (e.type === 'service_failed') {
      const subject = subjectOf(e);
      if (!open.has(subject)) open.set(subject, t);
    } else if (e.type === 'service_recovered') {
      const subject = subjectOf(e);
      const recoveryMs = numberIn(e.details, ['recoveryMs']);
      const opened = open.get(subject);
      open.delete(subject);
      // recoveryMs counts from the first failed probe, which precedes the service_failed event.
      const start = recoveryMs !== undefined ? t - recoveryMs : opened;
      if (start !== undefined) incidents.push({ kind: 'service', subject, startMs: start, endMs: t, open: false });
    } else if (FAILOVER_TYPES.has(e.type)) {
      const d = numberIn(e.details, FAILOVER_DURATION_KEYS) ?? takeoverGapMs(e.details) ?? 0;
      incidents.push({ kind: 'failover', subject: e.node, startMs: t - d, endMs: t, open: false });
    }
  }
  if (endMs !== undefined) {
    for (const [subject, t] of open) incidents.push({ kind: 'service', subject, startMs: t, endMs: endMs, open: true });
  }
  incidents.sort((a, b) => a.startMs - b.startMs);
  if (startMs === undefined || endMs === undefined || endMs <= startMs) {
    return {
      windowStart: startMs !== undefined ? new Date(startMs).toISOString() : null,
      windowEnd: endMs !== undefined ? new Date(endMs).toISOString() : null,
      windowHours: 0,
      failures: incidents.length,
      downtimeHours: 0,
      availability: null,
      mttfHours: null,
      mttrHours: null,
      incidents,
    };
  }
  const clipped = incidents.map((i): [number, number] => [Math.max(i.startMs, startMs), Math.min(i.endMs, endMs)]);
  const downMs = unionLength(clipped.filter(([s, e]) => e > s));
  const windowMs = endMs - startMs;
  const h = (ms: number) => ms / 3_600_000;
  const failures = incidents.length;
  return {
    windowStart: new Date(startMs).toISOString(),
    windowEnd: new Date(endMs).toISOString(),
    windowHours: h(windowMs),
    failures,
    downtimeHours: h(downMs),
    availability: (windowMs - downMs) / windowMs,
    mttfHours: failures ? h(windowMs - downMs) / failures : null,
    mttrHours: failures ? h(downMs) / failures : null,
    incidents,
  };
}
