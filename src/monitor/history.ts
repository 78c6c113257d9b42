/**
 * Bounded monitoring history: recent checks, restarts, escalations and incidents, oldest first.
 * Kept in memory for /status and the dashboard; the durable record is the event history file.
 */
import type { PolicyAction } from './policy.js';

export interface CheckRecord {
  service: string;
  /** ISO-8601 wall time of the probe's end. */
  at: string;
  ok: boolean;
  latencyMs: number;
  detail: string;
  action: PolicyAction;
  reason: string;
}

export interface RestartRecord {
  service: string;
  at: string;
  /** Restart number within the current window (1-based). */
  attempt: number;
  /** Whether stop() and start() both returned without error. */
  ok: boolean;
  durationMs: number;
  error?: string;
  reason: string;
}

export interface EscalationRecord {
  service: string;
  at: string;
  reason: string;
}

export interface IncidentRecord {
  service: string;
  /** Wall time of the first failed probe. */
  startedAt: string;
  /** Wall time of recovery, or null while the incident is open. */
  recoveredAt: string | null;
  /** From the first failed probe to recovery, in ms; null while open. */
  recoveryMs: number | null;
  restarts: number;
  escalated: boolean;
}

export interface MonitorHistorySnapshot {
  checks: CheckRecord[];
  restarts: RestartRecord[];
  escalations: EscalationRecord[];
  incidents: IncidentRecord[];
}

export class MonitorHistory {
  private readonly lists: MonitorHistorySnapshot = { checks: [], restarts: [], escalations: [], incidents: [] };

  constructor(private readonly size: number) {}

  addCheck(r: CheckRecord): void {
    this.push(this.lists.checks, r);
  }

  addRestart(r: RestartRecord): void {
    this.push(this.lists.restarts, r);
    const open = this.openIncident(r.service);
    if (open) open.restarts += 1;
  }

  addEscalation(r: EscalationRecord): void {
    this.push(this.lists.escalations, r);
    const open = this.openIncident(r.service);
    if (open) open.escalated = true;
  }

  openIncidentFor(service: string, startedAt: string): void {
    this.push(this.lists.incidents, {
      service,
      startedAt,
      recoveredAt: null,
      recoveryMs: null,
      restarts: 0,
      escalated: false,
    });
  }

  closeIncident(service: string, recoveredAt: string, recoveryMs: number): IncidentRecord | undefined {
    const open = this.openIncident(service);
    if (open) {
      open.recoveredAt = recoveredAt;
      open.recoveryMs = recoveryMs;
    }
    return open;
  }

  /** A deep copy, so callers cannot change the record. */
  snapshot(): MonitorHistorySnapshot {
    return structuredClone(this.lists);
  }

  private openIncident(service: string): IncidentRecord | undefined {
    for (let i = this.lists.incidents.length - 1; i >= 0; i--) {
      const inc = this.lists.incidents[i];
      if (inc.service === service) return inc.recoveredAt === null ? inc : undefined;
    }
    return undefined;
  }

  private push<T>(list: T[], item: T): void {
    list.push(item);
    if (list.length > this.size) list.splice(0, list.length - this.size);
  }
}
