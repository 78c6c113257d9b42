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
 * after the last write this node acknowledged alone, and (with `verify`) the standby's repository is seen
 * to hold every object acknowledged alone: pass counts travel in heartbeats and may be stale, the objects
 * themselves are not.
 */
import type { EventInput } from '../../events/bus.js';

export type FrontGuardState = 'sync' | 'waiting' | 'degraded';

/** An object write or delete acknowledged by this node alone (S3 path-style `/bucket/key`). */
export interface LoneWrite {
  path: string;
  /** The ETag acknowledged (null for a delete). */
  etag: string | null;
  deleted: boolean;
}

/** Lone writes remembered for verification; past this, the oldest are not checked (one more pass is required instead). */
const MAX_LONE_WRITES = 10_000;

export interface FrontGuardOptions {
  degradeAfterMs: number;
  /** Monotonic time since which the standby is known to be gone (after a failover: degrade at once). */
  standbyGoneSince?: number;
  claim: (peerHolds: boolean) => Promise<boolean>;
  /**
   * Whether the standby's repository holds each of these writes (the object with that ETag, or no object
   * for a delete). Asked before the standby is named again; without it the pass count alone decides.
   */
  verify?: (writes: LoneWrite[]) => Promise<boolean>;
  emit?: (e: EventInput) => void;
  /**
   * Ask the standby for a listing pass now (not awaited; the caller rate-limits it). Called while the
   * standby waits to be named and the pass that would name it has not run yet: without it a quiet
   * repository names the standby only when its puller's full pass falls due (up to fullPassMaxAgeMs,
   * twice), and until then a failover is refused.
   */
  requestPass?: () => void;
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
  /** Writes acknowledged alone since the standby was last named (by path: the last one counts). */
  private readonly lone = new Map<string, LoneWrite>();
  private loneOverflow = false;
  /** Bumped on every lone acknowledgement (a verification that saw an older value is stale). */
  private loneSeq = 0;

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

  /**
   * A write went to the local repository only and was acknowledged: the standby must pass again before
   * it is named, and hold `write` (an object write or delete; none for a multipart part).
   */
  ackedAlone(write?: LoneWrite): void {
    this.passBaseline = this.lastPeer ? this.lastPeer.passes + 1 : null;
    this.loneSeq++;
    if (!write) return;
    this.lone.delete(write.path);
    if (this.lone.size < MAX_LONE_WRITES) this.lone.set(write.path, write);
    else this.loneOverflow = true;
  }

  /** A write reached both repositories: what was acknowledged alone for that path is superseded. */
  ackedBoth(path: string): void {
    this.lone.delete(path);
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
        if (this.passBaseline === null) {
          this.passBaseline = p.passes + 1;
          this.o.requestPass?.();
        } else if (p.passes <= this.passBaseline + (this.loneOverflow ? 1 : 0)) this.o.requestPass?.();
        else {
          if (this.o.verify && this.lone.size > 0) {
            const seq = this.loneSeq;
            const checked = [...this.lone.values()];
            const held = await this.o.verify(checked).catch(() => false);
            // Not all there yet, or acknowledged alone again meanwhile: ask again at a later probe.
            if (!held || seq !== this.loneSeq) return this.current;
          }
          // No lone acknowledgement from here on: the record will name the standby.
          this.alone = false;
          if (!(await this.claim(true))) this.alone = true;
          else {
            this.lone.clear();
            this.loneOverflow = false;
          }
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
