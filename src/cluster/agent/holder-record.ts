import type { LeaseAnswer } from '../../ports.js';
import { hooksOf, type AgentCore } from './state.js';

/**
 * The agent's side of the data-holder record (safety invariant 2): what the coordinator last said, what
 * each synchronous data path claims, and the publication of the record by the primary, one request at a
 * time.
 */
export class HolderRecord {
  /** The record as the coordinator last reported it (null: unknown, or none kept). */
  holders: string[] | null = null;
  /** Per synchronous data path: whether it says the standby holds every acknowledged write. */
  private readonly claims = new Map<string, boolean>();
  /** The record publication in flight, so claims are sent one after the other. */
  private publishing: Promise<unknown> = Promise.resolve();
  /** A `not-a-holder` refusal was reported (event) for this record. */
  private refusalReported: string | null = null;

  constructor(private readonly c: AgentCore) {}

  /** The record is in force: a coordinator keeps it and some data path is synchronous. */
  kept(): boolean {
    return !!this.c.d.coordinator && hooksOf(this.c).some((h) => h.syncMode?.() === true);
  }

  list(): string[] | null {
    return this.holders ? [...this.holders] : null;
  }

  /** The record names the peer. */
  peerIsHolder(): boolean {
    return !!this.c.peerCfg && !!this.holders?.includes(this.c.peerCfg.node);
  }

  /** Every coordinator answer carries the record. */
  note(a: LeaseAnswer): void {
    if (a.holders !== undefined) this.holders = a.holders ? [...a.holders] : null;
  }

  /** A new primary starts as the only holder: its synchronous paths add the standby back once it holds everything. */
  startOver(): void {
    this.claims.clear();
    this.refusalReported = null;
  }

  /** A planned handover handed every synchronous path's data over: the successor holds everything. */
  claimAllSynchronous(): void {
    for (const h of hooksOf(this.c)) if (h.syncMode?.()) this.claims.set(h.name, true);
  }

  /** The record this primary should publish: itself, plus the peer when every synchronous path says it holds everything. */
  desired(): string[] {
    const self = this.c.d.config.node;
    const peer = this.c.peerCfg?.node;
    const sync = hooksOf(this.c).filter((h) => h.syncMode?.() === true);
    const all = !!peer && sync.length > 0 && sync.every((h) => this.claims.get(h.name) === true);
    return all && peer ? [self, peer].sort() : [self];
  }

  /** Publish the record (one request at a time); true once the coordinator's record is `want`. */
  publish(want: string[] | null): Promise<boolean> {
    const c = this.c;
    const coord = c.d.coordinator;
    if (!coord) return Promise.resolve(true);
    const run = async (): Promise<boolean> => {
      if (c.s.role !== 'primary' && !c.s.handingDataOver() && !c.s.handover) return false;
      const wanted = want ?? null;
      if (JSON.stringify(this.holders) === JSON.stringify(wanted)) return true;
      const before = this.holders;
      try {
        const a = await coord.setHolders(c.d.config.node, c.epoch, wanted, Math.max(c.timings.requestTimeoutMs, 2 * c.timings.heartbeatMs));
        c.witness.answered(a);
        if (!a.granted) return false;
        c.d.bus.emit({
          type: 'holders_changed',
          severity: wanted && wanted.length === 1 ? 'warning' : 'info',
          message: wanted === null ? 'data-holder record cleared: no data path is synchronous' : `data-holder record: ${wanted.join(', ')} hold every acknowledged write`,
          details: { before, after: wanted },
        });
        return true;
      } catch (err) {
        c.witness.failed(err);
        return false;
      }
    };
    const p = this.publishing.then(run, run);
    this.publishing = p.catch(() => undefined);
    return p;
  }

  /** HolderControl.claim for the data paths. */
  readonly claim = async (path: string, peerHolds: boolean): Promise<boolean> => {
    this.claims.set(path, peerHolds);
    if (!this.c.d.coordinator) return true;
    if (this.c.s.role !== 'primary') return false;
    const want = this.desired();
    const ok = await this.publish(want);
    // Another path may still keep the peer out: this path's claim is recorded either way.
    return ok && (!peerHolds || want.length > 1 || JSON.stringify(this.holders) === JSON.stringify(want));
  };

  /** After a granted lease renewal: keep the record in step with the configuration. */
  reconcile(a: LeaseAnswer): void {
    // Kept (sync) clusters always have one; a cluster with no synchronous path any more clears the one
    // an earlier configuration left.
    const kept = this.kept();
    if (kept && a.holders === null) void this.publish(this.desired());
    else if (!kept && a.holders) void this.publish(null);
  }

  /** The coordinator refused this node an epoch because the record does not name it: say so once per record. */
  refused(a: LeaseAnswer): void {
    const key = JSON.stringify(a.holders ?? null);
    if (this.refusalReported === key) return;
    this.refusalReported = key;
    this.c.d.bus.emit({
      type: 'promotion_blocked',
      severity: 'critical',
      message: `not promoting: the data-holder record names ${(a.holders ?? []).join(', ')}, not ${this.c.d.config.node}; this node may lack acknowledged writes. It waits for a holder to return; \`nimbus-ha promote --accept-data-loss\` overrides (the writes it lacks are lost)`,
      details: { holders: a.holders ?? null },
    });
  }
}
