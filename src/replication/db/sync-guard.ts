/**
 * Keeps synchronous replication configured as the operator asked. In sync mode commits wait for the
 * named standby; when it is gone — disconnected, or connected but hung (its flush position does not move
 * while the primary is ahead) — `block` keeps them waiting (no acknowledged commit is ever lost) and
 * `degrade` clears synchronous_standby_names after `degradeAfterMs` (writes continue, an event says the
 * cluster is now exposed to loss) and restores it once the standby streams again. Call tick() each cycle.
 *
 * The data-holder record moves with it, always before the fact: before commits stop waiting for the
 * standby the record must name the primary alone (a guard that cannot tell the coordinator keeps
 * commits waiting), and the standby is named again only once commits wait for it and it has flushed
 * everything written before that moment.
 */
import { systemClock } from '../../clock.js';
import type { EventInput } from '../../events/bus.js';
import type { Clock } from '../../ports.js';
import type { ReplicaInfo, SyncStandbyControl } from './types.js';

/** Largest flush lag (bytes) at which a degraded guard turns synchronous replication back on. */
const RESTORE_MAX_LAG_BYTES = 1024 * 1024;

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
   * Timer jitter forgiven when comparing a loss or stall with degradeAfterMs (default 0). Ticks on a
   * fixed grid arrive a few ms early or late: without it a stall of degradeAfterMs - 2 ms would wait a
   * whole further tick before degrading.
   */
  jitterMs?: number;
  /**
   * Monotonic time since which the standby is known to be gone (a failover: the old primary is dead),
   * so a 'degrade' policy does not first block commits for degradeAfterMs with nobody to wait for.
   */
  standbyGoneSince?: number;
  /** The primary's current WAL position in bytes (read after synchronous replication was switched on). */
  position?: () => Promise<number | null>;
  /**
   * Tell the data-holder record whether the standby holds every acknowledged commit; resolves true once
   * the coordinator's record says so. Without it no record is kept.
   */
  claim?: (peerHolds: boolean) => Promise<boolean>;
  clock?: Clock;
  emit?: (e: EventInput) => void;
}

/** async: not configured; sync: commits wait for a streaming standby; waiting: sync configured but the
 * standby is gone or hung (commits block); degraded: sync configured but temporarily switched off. */
export type SyncGuardState = 'async' | 'sync' | 'waiting' | 'degraded';

export class SyncGuard {
  /** What we last wrote (undefined: not yet, so the first tick always writes). */
  private applied: string | null | undefined;
  private lostSince: number | null = null;
  private current: SyncGuardState;
  /** The standby's flush position at the last tick and since when it has not moved while behind. */
  private lastFlush: number | null = null;
  private stalledSince: number | null = null;
  /** When the previous tick read the standby (monotonic ms): the earliest a change seen now can date from. */
  private lastReadAt: number | null = null;
  /** WAL position at which commits started waiting for the standby again (it must flush up to here). */
  private syncFrom: number | null = null;
  /** The record names the standby (as far as this guard told it). */
  private peerNamed = false;
  private blockedReported = false;

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

  /** Whether the guard has told the record that the standby holds every acknowledged commit. */
  get standbyHolds(): boolean {
    return this.peerNamed;
  }

  private async apply(name: string | null): Promise<void> {
    if (this.applied === name) return;
    await this.db.setSynchronousStandby(name);
    this.applied = name;
    if (name !== null) this.syncFrom = null; // sampled again below, after the setting took effect
  }

  private async claim(peerHolds: boolean): Promise<boolean> {
    const c = this.opts.claim;
    const ok = c ? await c(peerHolds).catch(() => false) : true;
    if (ok) this.peerNamed = peerHolds;
    return ok;
  }

  /**
   * When the next decision could fall due (ms from now) if nothing changes: the moment a stall or a loss
   * reaches degradeAfterMs under the 'degrade' policy; null when none is pending. The caller reads again
   * then, so a hung or gone standby costs commits degradeAfterMs plus one read, not plus a whole period.
   */
  dueInMs(): number | null {
    const o = this.opts;
    if (o.mode === 'async' || o.onStandbyLoss !== 'degrade' || this.current === 'degraded') return null;
    const since = this.current === 'waiting' ? this.lostSince : this.stalledSince;
    if (since === null) return null;
    const now = (o.clock ?? systemClock).monotonicMs();
    return Math.max(0, since + o.degradeAfterMs - (o.jitterMs ?? 0) - now);
  }

  /**
   * `primaryBytes`: the primary's WAL position read just before (hung-standby detection).
   * `syncWaitMs`: how long the oldest commit has been waiting for the standby, read with it. A stall or
   * loss first seen now began between the previous read and now; the oldest waiting commit dates it
   * inside that window (it cannot have begun before the previous read, which saw the standby keep up).
   */
  async tick(primaryBytes: number | null = null, syncWaitMs: number | null = null): Promise<SyncGuardState> {
    const o = this.opts;
    if (o.mode === 'async') {
      await this.apply(null);
      return (this.current = 'async');
    }
    const clock = o.clock ?? systemClock;
    const now = clock.monotonicMs();
    const r = (await this.db.replicas()).find((x) => x.name === o.standbyName && x.state === 'streaming');
    const prevRead = this.lastReadAt;
    this.lastReadAt = now;
    const began = prevRead !== null && syncWaitMs !== null && syncWaitMs > 0 ? Math.min(now, Math.max(prevRead, now - syncWaitMs)) : now;
    // Hung: connected, behind the primary, and its flush position has not moved for degradeAfterMs.
    const flush = r?.flushBytes ?? null;
    if (r && flush !== null && primaryBytes !== null && flush < primaryBytes) {
      if (this.stalledSince === null || flush !== this.lastFlush) this.stalledSince = began;
    } else {
      this.stalledSince = null;
    }
    this.lastFlush = flush;
    // stalledSince is the last read that saw the flush position move, so the stall is at least this old;
    // jitterMs keeps timer jitter between two reads on the same grid from costing a whole period.
    const stalled = this.stalledSince !== null && now - this.stalledSince >= o.degradeAfterMs - (o.jitterMs ?? 0);

    // Back from degraded only once nearly level: a standby far behind would hold every commit while it
    // catches up.
    const level = flush === null || primaryBytes === null || primaryBytes - flush <= RESTORE_MAX_LAG_BYTES;
    if (r && !stalled && (this.current !== 'degraded' || level)) {
      const wasDegraded = this.current === 'degraded';
      this.lostSince = null;
      this.blockedReported = false;
      await this.apply(o.standbyName);
      if (this.syncFrom === null) this.syncFrom = (await o.position?.().catch(() => null)) ?? primaryBytes;
      // Named again only once commits wait for it and it has everything acknowledged before that.
      if (!this.peerNamed && flush !== null && this.syncFrom !== null && flush >= this.syncFrom) await this.claim(true);
      if (wasDegraded) {
        o.emit?.({ type: 'db.sync.restored', severity: 'info', message: `standby ${o.standbyName} streams again: commits wait for it again (synchronous replication restored)`, details: { standby: o.standbyName } });
      }
      return (this.current = 'sync');
    }
    this.lostSince ??= stalled && this.stalledSince !== null ? this.stalledSince : began;
    const goneMs = now - this.lostSince;
    if (o.onStandbyLoss === 'degrade' && goneMs >= o.degradeAfterMs - (o.jitterMs ?? 0)) {
      if (this.current !== 'degraded') {
        // Before commits stop waiting, the record must name this node alone.
        if (!(await this.claim(false))) {
          if (!this.blockedReported) {
            this.blockedReported = true;
            o.emit?.({
              type: 'db.sync.degrade_blocked',
              severity: 'critical',
              message: `standby ${o.standbyName} ${stalled ? 'is hung' : 'is gone'} but the data-holder record could not be updated (coordinator unreachable): commits keep waiting rather than risk acknowledged writes`,
              details: { standby: o.standbyName, goneMs: Math.round(goneMs) },
            });
          }
          await this.apply(o.standbyName);
          return (this.current = 'waiting');
        }
        await this.apply(null);
        o.emit?.({
          type: 'db.sync.degraded',
          severity: 'warning',
          message: `standby ${o.standbyName} ${stalled ? 'hung (flush position not advancing)' : 'gone'} for ${Math.round(goneMs)} ms: synchronous replication switched off, commits no longer wait (data written now may be lost on failover)`,
          details: { standby: o.standbyName, goneMs: Math.round(goneMs), degradeAfterMs: o.degradeAfterMs, hung: stalled },
        });
      }
      return (this.current = 'degraded');
    }
    await this.apply(o.standbyName);
    return (this.current = 'waiting');
  }
}
