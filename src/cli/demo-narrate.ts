/**
 * What the demo says while its stack stays up after the report: one line per role change, failover,
 * switchover and fail-back (with the gap clients saw through the VIP), per data-path degradation and
 * recovery, and per node whose API stops or resumes answering. The lines come from the nodes' own
 * events (`GET /events`), so they say what the sidecars decided, not what the demo guesses.
 */
import type { HaEvent } from '../ports.js';

/** Event types that change who serves, with the client gap measured through the VIP. */
const TAKEOVERS = new Set(['failover', 'switchover', 'failback', 'promoted']);

/** Event types narrated with their own message (the sidecar's one human sentence). */
const NARRATED = new Set([
  'peer_dead',
  'peer_alive',
  'fenced',
  'demoted',
  'promotion_blocked',
  'forced_promotion',
  'handover_started',
  'handover_aborted',
  'handover_failed',
  'escalation_handover',
  'maintenance_on',
  'maintenance_off',
  'path_degraded',
  'path_restored',
  'db.sync.degraded',
  'db.sync.restored',
  'db.rejoined',
  'db.cloned',
  'db.diverged',
  'repo.sync.degraded',
  'repo.sync.restored',
  'files_sync_failed',
  'files_sync_recovered',
  'nimbus_state_failed',
  'service_failed',
  'service_restarted',
  'service_recovered',
  'service_escalated',
  'vip_failed',
  'witness_unreachable',
  'witness_reachable',
]);

export function isNarrated(type: string): boolean {
  return type === 'role_changed' || TAKEOVERS.has(type) || NARRATED.has(type);
}

export function isTakeover(type: string): boolean {
  return TAKEOVERS.has(type);
}

const clock = (iso: string): string => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '--:--:--' : d.toTimeString().slice(0, 8);
};

/**
 * One line for an event, or null when the demo does not narrate it. `clientGapMs` is the longest time
 * clients went without an answer through the VIP around a takeover (null: not measured).
 */
export function narrateEvent(e: HaEvent, clientGapMs: number | null = null): string | null {
  if (!isNarrated(e.type)) return null;
  const head = `  ${clock(e.time)}  ${e.node}  `;
  const d = e.details ?? {};
  if (e.type === 'role_changed') return `${head}role ${String(d.from ?? '?')} -> ${String(d.to ?? '?')} (epoch ${e.epoch})`;
  if (TAKEOVERS.has(e.type)) {
    const parts = [`${e.type === 'promoted' ? 'promoted' : e.type}: ${e.node} is primary at epoch ${e.epoch}`];
    parts.push(clientGapMs === null ? 'client gap not measured' : `clients saw ${clientGapMs} ms without an answer`);
    if (typeof d.detect_ms === 'number') parts.push(`detection ${d.detect_ms} ms`);
    return head + parts.join(', ');
  }
  return `${head}${e.type}: ${e.message}`;
}

/** A stable identity for an event across polls of /events (which carry no id). */
export function eventKey(e: HaEvent): string {
  return `${e.node}|${e.time}|${e.type}|${e.epoch}|${e.message}`;
}

/** An interval (Date.now ms) during which no request through the VIP was answered. */
export interface Outage {
  from: number;
  to: number | null;
}

/**
 * The client gap around a takeover at `at`: the longest outage that overlaps [at - leadMs, at + lagMs]
 * (a failover's outage starts before the event, when the old primary died; a handover's a little
 * after the request). An outage still open counts up to `now`.
 */
export function gapAround(outages: readonly Outage[], at: number, now: number, leadMs = 15_000, lagMs = 5_000): number | null {
  let worst: number | null = null;
  for (const o of outages) {
    const end = o.to ?? now;
    if (end < at - leadMs || o.from > at + lagMs) continue;
    worst = Math.max(worst ?? 0, end - o.from);
  }
  return worst === null ? null : Math.round(worst);
}

/**
 * Asks the VIP every `everyMs` and keeps the last outages (bounded), so the demo can stay up for days
 * without growing. An outage runs from the send time of the last answered request to that of the next.
 */
export class VipWatch {
  readonly outages: Outage[] = [];
  private lastOk: number | null = null;
  private lastAnswered = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;

  constructor(
    private readonly url: string,
    private readonly ok: (status: number) => boolean,
    private readonly everyMs = 20,
    private readonly keep = 50,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Time (Date.now) of the last answered request. */
  get answeredAt(): number {
    return this.lastAnswered;
  }

  private async tick(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    const t = Date.now();
    let ok = false;
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(300) });
      await res.arrayBuffer();
      ok = this.ok(res.status);
    } catch {
      ok = false;
    } finally {
      this.inFlight = false;
    }
    const open = this.outages.at(-1);
    if (ok) {
      if (open && open.to === null) open.to = t;
      this.lastOk = t;
      this.lastAnswered = t;
    } else if (!open || open.to !== null) {
      this.outages.push({ from: this.lastOk ?? t, to: null });
      if (this.outages.length > this.keep) this.outages.shift();
    }
  }
}

export interface NarratorNode {
  name: string;
  url: string;
}

/**
 * Polls each node's /events and prints the narrated ones as they appear. Events present when it starts
 * are the report's and are not repeated.
 */
export class Narrator {
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private readonly down = new Map<string, boolean>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly nodes: NarratorNode[],
    private readonly vip: VipWatch | null,
    private readonly print: (line: string) => void,
    private readonly everyMs = 500,
  ) {}

  async start(): Promise<void> {
    for (const n of this.nodes) for (const e of (await this.fetchEvents(n)) ?? []) this.remember(e);
    this.vip?.start();
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.vip?.stop();
  }

  private remember(e: HaEvent): boolean {
    const k = eventKey(e);
    if (this.seen.has(k)) return false;
    this.seen.add(k);
    this.seenOrder.push(k);
    if (this.seenOrder.length > 5000) this.seen.delete(this.seenOrder.shift()!);
    return true;
  }

  private async fetchEvents(n: NarratorNode): Promise<HaEvent[] | null> {
    try {
      const res = await fetch(`${n.url}/events?limit=200`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { events?: HaEvent[] };
      return body.events ?? [];
    } catch {
      return null;
    }
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const fresh: HaEvent[] = [];
      for (const n of this.nodes) {
        const events = await this.fetchEvents(n);
        const wasDown = this.down.get(n.name) ?? false;
        if (events === null) {
          if (!wasDown) this.print(`  ${clock(new Date().toISOString())}  ${n.name}  its API stopped answering (${n.url})`);
          this.down.set(n.name, true);
          continue;
        }
        if (wasDown) this.print(`  ${clock(new Date().toISOString())}  ${n.name}  its API answers again`);
        this.down.set(n.name, false);
        for (const e of events) if (this.remember(e) && isNarrated(e.type)) fresh.push(e);
      }
      fresh.sort((x, y) => Date.parse(x.time) - Date.parse(y.time));
      for (const e of fresh) this.print(narrateEvent(e, isTakeover(e.type) ? await this.gapFor(e) : null)!);
    } finally {
      this.busy = false;
    }
  }

  /** Waits (up to 30 s) for the VIP to answer after the takeover, then measures the gap around it. */
  private async gapFor(e: HaEvent): Promise<number | null> {
    if (!this.vip) return null;
    const at = Date.parse(e.time);
    const until = Date.now() + 30_000;
    while (this.vip.answeredAt <= at && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return gapAround(this.vip.outages, at, Date.now());
  }
}
