import { randomUUID } from 'node:crypto';
import type { AdminRequest } from '../decide.js';
import type { AgentCore, RequestRecord } from './state.js';

/** How many finished requests stay readable (GET /admin/requests/:id). */
const REQUEST_LOG_SIZE = 50;

/**
 * Admin requests: recorded here, decided by the next cycle (never acted on directly), readable by id
 * until REQUEST_LOG_SIZE newer ones pushed them out.
 */
export class AdminInbox {
  /** Requests waiting for a decision, oldest first. */
  private queue: AdminRequest[] = [];
  private readonly log: RequestRecord[] = [];

  constructor(private readonly c: AgentCore) {}

  /** The request the next cycle decides, if any. */
  head(): AdminRequest | null {
    return this.queue[0] ?? null;
  }

  get pending(): number {
    return this.queue.length;
  }

  request(kind: 'switchover' | 'failback' | 'promote', to: string | null = null): RequestRecord {
    const id = randomUUID();
    const req: AdminRequest = kind === 'switchover' ? { id, kind, to } : { id, kind };
    this.queue.push(req);
    const rec = this.record({ id, kind, state: 'pending', message: 'queued for the next decision cycle' });
    this.c.kick();
    return rec;
  }

  setMaintenance(on: boolean): RequestRecord {
    const c = this.c;
    const was = c.maintenance;
    if (was !== on) {
      c.d.store.update({ maintenance: on });
      c.d.bus.emit({ type: on ? 'maintenance_on' : 'maintenance_off', severity: 'warning', message: on ? 'maintenance mode on: automatic promotion, handover and restarts paused' : 'maintenance mode off: automation resumed' });
    }
    const rec = this.record({ id: randomUUID(), kind: 'maintenance', state: 'done', message: `maintenance ${on ? 'on' : 'off'}${was === on ? ' (unchanged)' : ''}` });
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

  private record(r: Omit<RequestRecord, 'createdAt'>): RequestRecord {
    const rec: RequestRecord = { ...r, createdAt: new Date(this.c.d.clock.nowMs()).toISOString() };
    this.log.push(rec);
    if (this.log.length > REQUEST_LOG_SIZE) this.log.shift();
    return rec;
  }
}
