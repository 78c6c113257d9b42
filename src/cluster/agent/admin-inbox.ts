import { randomUUID } from 'node:crypto';
import { holdDownMessage, plannedHoldDownLeftMs, type AdminRequest } from '../decide.js';
import type { AgentCore, RequestRecord } from './state.js';

/** How many finished requests stay readable (GET /admin/requests/:id). */
const REQUEST_LOG_SIZE = 50;
/** Requests refused at once for the same reason are reported (event, notifiers) once per this window. */
const REFUSAL_REPORT_MS = 60_000;

/**
 * Admin requests: recorded here, decided by the next cycle (never acted on directly), readable by id
 * until REQUEST_LOG_SIZE newer ones pushed them out.
 */
export class AdminInbox {
  /** Requests waiting for a decision, oldest first. */
  private queue: AdminRequest[] = [];
  private readonly log: RequestRecord[] = [];
  /** Per reason: when a refusal was last reported, and how many like it were not reported since. */
  private readonly refusals = new Map<string, { at: number; unreported: number }>();

  constructor(private readonly c: AgentCore) {}

  /** The request the next cycle decides, if any. */
  head(): AdminRequest | null {
    return this.queue[0] ?? null;
  }

  get pending(): number {
    return this.queue.length;
  }

  /**
   * Queue a request for the next decision cycle, or refuse it at once (state 'refused', the API answers
   * 409) when the answer is already known: a planned move already queued or running, or the hold-down
   * after the last one. A burst of requests thus moves the role once.
   */
  request(kind: 'switchover' | 'failback' | 'promote', to: string | null = null): RequestRecord {
    const c = this.c;
    if (kind !== 'promote') {
      const queued = this.queue.find((r) => r.kind !== 'promote');
      if (queued) return this.refuseNow(kind, 'queued', `${kind} refused: a ${queued.kind} is already queued (request ${queued.id})`);
      if (c.s.handover) return this.refuseNow(kind, 'running', `${kind} refused: a handover to ${c.s.handover.to} is in progress`);
      if (c.s.drain) return this.refuseNow(kind, 'running', `${kind} refused: a ${c.s.drain.reason} to ${c.s.drain.to} is in progress (draining load balancers)`);
      if (c.s.role === 'primary' && c.s.plannedMoveAt !== null) {
        const view = { plannedMoveAgoMs: c.d.clock.monotonicMs() - c.s.plannedMoveAt, timings: c.timings };
        const left = plannedHoldDownLeftMs(view);
        if (left > 0) return this.refuseNow(kind, 'hold-down', `${kind} refused: ${holdDownMessage(view.plannedMoveAgoMs, left)}`);
      }
    }
    const id = randomUUID();
    const req: AdminRequest = kind === 'switchover' ? { id, kind, to } : { id, kind };
    this.queue.push(req);
    const rec = this.record({ id, kind, state: 'pending', message: 'queued for the next decision cycle' });
    this.c.kick();
    return rec;
  }

  setMaintenance(on: boolean, scope: 'cluster' | 'node' = 'cluster'): RequestRecord {
    const c = this.c;
    const st = c.d.store.get();
    const was = scope === 'node' ? st.nodeMaintenance : st.maintenance;
    if (was !== on && scope === 'node') {
      // This node alone: kept in its epoch store, never told to the peer.
      c.d.store.update({ nodeMaintenance: on });
      const me = c.d.config.node;
      c.d.bus.emit({
        type: on ? 'maintenance_on' : 'maintenance_off',
        severity: 'warning',
        message: on
          ? `maintenance mode on for ${me} only: automatic promotion, handover and restarts paused on this node; its peer is not paused`
          : `maintenance mode off for ${me}${st.maintenance ? ' (cluster-wide maintenance is still on)' : ': automation resumed on this node'}`,
        details: { scope: 'node', node: me },
      });
    } else if (was !== on) {
      // A new version: the peer takes it from the next heartbeat (maintenance is cluster-wide).
      const version = st.maintenanceVersion + 1;
      c.d.store.update({ maintenance: on, maintenanceVersion: version });
      c.d.bus.emit({ type: on ? 'maintenance_on' : 'maintenance_off', severity: 'warning', message: on ? 'maintenance mode on: automatic promotion, handover and restarts paused on both nodes' : 'maintenance mode off: automation resumed on both nodes', details: { scope: 'cluster', version } });
    }
    const only = scope === 'node' ? ' for this node only' : '';
    const rec = this.record({ id: randomUUID(), kind: 'maintenance', state: 'done', message: `maintenance ${on ? 'on' : 'off'}${only}${was === on ? ' (unchanged)' : ''}` });
    c.kick();
    return rec;
  }

  get(id: string): RequestRecord | undefined {
    return this.log.find((r) => r.id === id);
  }

  /** Take a request off the queue (the cycle acts on it now); its record, if still kept. */
  take(id: string): RequestRecord | undefined {
    this.queue = this.queue.filter((r) => r.id !== id);
    return this.get(id);
  }

  /** The decision on a request: done or refused, with the sentence saying why. */
  complete(id: string, ok: boolean, message: string): void {
    const rec = this.take(id);
    if (rec) {
      rec.state = ok ? 'done' : 'refused';
      rec.message = message;
    }
    this.c.d.bus.emit({ type: ok ? 'request_done' : 'request_refused', severity: ok ? 'info' : 'warning', message, details: { id } });
  }

  /** The last few records, for /status. */
  recent(n = 10): RequestRecord[] {
    return this.log.slice(-n);
  }

  /** A request refused before it was queued; reported once per reason and REFUSAL_REPORT_MS, with a count. */
  private refuseNow(kind: RequestRecord['kind'], reason: string, message: string): RequestRecord {
    const rec = this.record({ id: randomUUID(), kind, state: 'refused', message });
    const now = this.c.d.clock.monotonicMs();
    const last = this.refusals.get(reason);
    if (last && now - last.at < REFUSAL_REPORT_MS) {
      last.unreported++;
      return rec;
    }
    const more = last?.unreported ? ` (${last.unreported} more refused for this reason since the last report)` : '';
    this.refusals.set(reason, { at: now, unreported: 0 });
    this.c.d.bus.emit({ type: 'request_refused', severity: 'warning', message: `${message}${more}`, details: { id: rec.id, reason, unreported: last?.unreported ?? 0 } });
    return rec;
  }

  private record(r: Omit<RequestRecord, 'createdAt'>): RequestRecord {
    const rec: RequestRecord = { ...r, createdAt: new Date(this.c.d.clock.nowMs()).toISOString() };
    this.log.push(rec);
    if (this.log.length > REQUEST_LOG_SIZE) this.log.shift();
    return rec;
  }
}
