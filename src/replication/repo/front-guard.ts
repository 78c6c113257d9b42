/**
 * When the repository front may acknowledge a write, and what the data-holder record says about the
 * repository. The same rule as the database's sync guard, always before the fact:
 *
 * - `sync`: writes go to both repositories and are acknowledged only when both answered.
 * - `waiting`: the standby's repository is gone (or failing) for less than degradeAfterMs, or the record
 *   could not be told that this node holds the repository alone: writes are refused (503), never
 *   acknowledged alone.
 * - `degraded`: the record names this node alone (claim(false) resolved true): writes go to the local
 *   repository and are acknowledged alone; an event says the cluster is exposed.
 *
 * Back from degraded: as soon as the standby answers again writes go to both (`sync`), and the record
 * names the standby again (claim(true)) only once the standby's puller finished a clean pass that started
 * after the last write this node acknowledged alone.
 */
import type { EventInput } from '../../events/bus.js';

export type FrontGuardState = 'sync' | 'waiting' | 'degraded';

export interface FrontGuardOptions {
  degradeAfterMs: number;
  /** Monotonic time since which the standby is known to be gone (after a failover: degrade at once). */
  standbyGoneSince?: number;
  claim: (peerHolds: boolean) => Promise<boolean>;
  emit?: (e: EventInput) => void;
  now: () => number;
}

/** The standby's puller as its heartbeats report it. */
export interface PeerPuller {
  /** Completed passes (monotonic within one puller). */
  passes: number;
  objectsBehind: number;
  ok: boolean;
}

export class FrontGuard {
  private current: FrontGuardState = 'waiting';
  private lostSince: number | null;
  /** The record names the standby (as far as this guard told it). */
  private peerNamed = false;
  /** claim(false) resolved true and no claim(true) since: acknowledging alone is allowed. */
  private alone = false;
  /** The standby's pass count must exceed this before it is named (a pass started after the last lone ack). */
  private passBaseline: number | null = null;
  private lastPeer: PeerPuller | null = null;
  private blockedReported = false;
  private claiming = false;

  constructor(private readonly o: FrontGuardOptions) {
    this.lostSince = o.standbyGoneSince ?? null;
  }

  get state(): FrontGuardState {
    return this.current;
  }

  get standbyHolds(): boolean {
    return this.peerNamed;
  }

  /** Writes must reach the standby too (it answered lately). */
  teeToPeer(): boolean {
    return this.lostSince === null;
  }

  /** A write that reached only the local repository may be acknowledged. */
  mayAckAlone(): boolean {
    return this.alone && !this.peerNamed && !this.claiming;
  }

  /** A write went to the local repository only and was acknowledged: the standby must pass again before it is named. */
  ackedAlone(): void {
    this.passBaseline = this.lastPeer ? this.lastPeer.passes + 1 : null;
  }

  /** A write to the standby's repository failed (or a probe did). */
  peerFailed(): void {
    this.lostSince ??= this.o.now();
  }

  peerPuller(p: PeerPuller | null): void {
    this.lastPeer = p;
  }

  private async claim(peerHolds: boolean): Promise<boolean> {
    this.claiming = true;
    try {
      const ok = await this.o.claim(peerHolds).catch(() => false);
      if (ok) {
        this.peerNamed = peerHolds;
        this.alone = !peerHolds;
      }
      return ok;
    } finally {
      this.claiming = false;
    }
  }

  /** Each probe: whether the standby's repository answered. */
  async tick(peerUp: boolean): Promise<FrontGuardState> {
    const now = this.o.now();
    if (peerUp) {
      const was = this.current;
      this.lostSince = null;
      this.blockedReported = false;
      this.current = 'sync';
      if (was === 'degraded') {
        this.o.emit?.({ type: 'repo.sync.restored', severity: 'info', message: "the standby's repository answers again: uploads and deletes go to both repositories again", details: {} });
      }
      const p = this.lastPeer;
      if (!this.peerNamed && p && p.ok && p.objectsBehind === 0) {
        if (this.passBaseline === null) this.passBaseline = p.passes + 1;
        else if (p.passes > this.passBaseline) {
          // No lone acknowledgement from here on: the record will name the standby.
          this.alone = false;
          if (!(await this.claim(true))) this.alone = true;
        }
      }
      return this.current;
    }
    this.lostSince ??= now;
    const goneMs = now - this.lostSince;
    if (goneMs < this.o.degradeAfterMs) return (this.current = 'waiting');
    if (this.current !== 'degraded' || !this.alone) {
      if (!(await this.claim(false))) {
        if (!this.blockedReported) {
          this.blockedReported = true;
          this.o.emit?.({
            type: 'repo.sync.degrade_blocked',
            severity: 'critical',
            message: "the standby's repository is gone but the data-holder record could not be updated: uploads are refused (503) rather than acknowledged on this node alone",
            details: { goneMs: Math.round(goneMs) },
          });
        }
        return (this.current = 'waiting');
      }
      this.passBaseline = null;
      this.o.emit?.({
        type: 'repo.sync.degraded',
        severity: 'warning',
        message: `the standby's repository has been unreachable for ${Math.round(goneMs)} ms: uploads are acknowledged by this node alone (the data-holder record names it alone)`,
        details: { goneMs: Math.round(goneMs), degradeAfterMs: this.o.degradeAfterMs },
      });
    }
    return (this.current = 'degraded');
  }
}
