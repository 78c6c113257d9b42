/**
 * Keeps synchronous replication configured as the operator asked. In sync mode commits wait for the
 * named standby; when it is gone, `block` keeps them waiting (no acknowledged commit is ever lost) and
 * `degrade` clears synchronous_standby_names after `degradeAfterMs` (writes continue, an event says the
 * cluster is now exposed to loss) and restores it once the standby streams again. Call tick() each cycle.
 */
import { systemClock } from '../../clock.js';
import type { EventInput } from '../../events/bus.js';
import type { Clock } from '../../ports.js';
import type { ReplicaInfo, SyncStandbyControl } from './types.js';

export interface SyncGuardDb extends SyncStandbyControl {
  replicas(): Promise<ReplicaInfo[]>;
}

export interface SyncGuardOptions {
  mode: 'async' | 'sync';
  /** Application name of the standby that must confirm commits (its node name). */
  standbyName: string;
  onStandbyLoss: 'block' | 'degrade';
  degradeAfterMs: number;
  /**
   * Monotonic time since which the standby is known to be gone (a failover: the old primary is dead),
   * so a 'degrade' policy does not first block commits for degradeAfterMs with nobody to wait for.
   */
  standbyGoneSince?: number;
  clock?: Clock;
  emit?: (e: EventInput) => void;
}

/** async: not configured; sync: commits wait for a streaming standby; waiting: sync configured but the
 * standby is gone (commits block); degraded: sync configured but temporarily switched off. */
export type SyncGuardState = 'async' | 'sync' | 'waiting' | 'degraded';

export class SyncGuard {
  /** What we last wrote (undefined: not yet, so the first tick always writes). */
  private applied: string | null | undefined;
  private lostSince: number | null = null;
  private current: SyncGuardState;

  constructor(
    private readonly db: SyncGuardDb,
    private readonly opts: SyncGuardOptions,
  ) {
    this.current = opts.mode === 'async' ? 'async' : 'waiting';
    if (opts.standbyGoneSince !== undefined) this.lostSince = opts.standbyGoneSince;
  }

  get state(): SyncGuardState {
    return this.current;
  }

  private async apply(name: string | null): Promise<void> {
    if (this.applied === name) return;
    await this.db.setSynchronousStandby(name);
    this.applied = name;
  }

  async tick(): Promise<SyncGuardState> {
    const o = this.opts;
    if (o.mode === 'async') {
      await this.apply(null);
      return (this.current = 'async');
    }
    const clock = o.clock ?? systemClock;
    const now = clock.monotonicMs();
    const streaming = (await this.db.replicas()).some((r) => r.name === o.standbyName && r.state === 'streaming');
    if (streaming) {
      const wasDegraded = this.current === 'degraded';
      this.lostSince = null;
      await this.apply(o.standbyName);
      if (wasDegraded) {
        o.emit?.({ type: 'db.sync.restored', severity: 'info', message: `standby ${o.standbyName} streams again: commits wait for it again (synchronous replication restored)`, details: { standby: o.standbyName } });
      }
      return (this.current = 'sync');
    }
    this.lostSince ??= now;
    const goneMs = now - this.lostSince;
    if (o.onStandbyLoss === 'degrade' && goneMs >= o.degradeAfterMs) {
      if (this.current !== 'degraded') {
        await this.apply(null);
        o.emit?.({
          type: 'db.sync.degraded',
          severity: 'warning',
          message: `standby ${o.standbyName} gone for ${Math.round(goneMs)} ms: synchronous replication switched off, commits no longer wait (data written now may be lost on failover)`,
          details: { standby: o.standbyName, goneMs: Math.round(goneMs), degradeAfterMs: o.degradeAfterMs },
        });
      }
      return (this.current = 'degraded');
    }
    await this.apply(o.standbyName);
    return (this.current = 'waiting');
  }
}
