import express, { Router } from 'express';
import type { Clock, ObjectStore } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import { errorMessage } from '../../errors.js';
import { systemClock } from '../../clock.js';
import type { RepoConfig } from './config.js';
import { RepoReplicator } from './replicator.js';
import { RepoChangeWatch } from './change-watch.js';
import { parseHint, type RepoChangeHint } from './hint.js';

interface SyncNowReply {
  ok: boolean;
  objectsBehind: number;
  copied: number;
  error: string | null;
}

/**
 * Image-repository sync as a data path: a standby pulls from the primary's repository in short
 * incremental passes; the primary runs nothing. Before a planned handover the primary asks the
 * standby for one more pass (its own writers are already cut off by the released VIP) and hands over
 * only when nothing is left behind. After a fail-over the returning node pulls the other way.
 *
 * With `watchDir`, the primary watches its repository's directory and reports the change generation
 * in status() (so in every heartbeat); the standby hands the primary's latest hint to its replicator,
 * which skips listing passes while the hint shows no change. A hint older than three heartbeat
 * intervals counts as absent (the primary's sidecar may be gone while its repository still takes writes).
 */
export class RepoDataPath implements RoleHooks {
  readonly name = 'repo';
  readonly replicator: RepoReplicator;
  readonly router: Router;
  /** Watches this node's repository directory while it is primary (repo.watchDir). */
  readonly watch: RepoChangeWatch | null;
  private standby = false;
  private readonly clock: Clock;
  private peerHint: { hint: RepoChangeHint; at: number; freshMs: number } | null = null;

  constructor(private readonly opts: { config: RepoConfig; local: ObjectStore; peer: ObjectStore; bus: EventBus; clock?: Clock; watch?: RepoChangeWatch }) {
    const c = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.watch = opts.watch ?? (c.watchDir ? new RepoChangeWatch(c.watchDir) : null);
    this.replicator = new RepoReplicator({
      changeHint: () => this.currentPeerHint(),
      changeHintFreshUntil: () => (this.peerHint ? this.peerHint.at + this.peerHint.freshMs : null),
      fullPassMaxAgeMs: c.fullPassMaxAgeMs,
      source: opts.peer,
      target: opts.local,
      bus: opts.bus,
      clock: opts.clock,
      intervalMs: c.intervalMs,
      deepVerifyCron: c.deepVerifyCron,
      deleteWindowMs: c.deleteWindowMs,
      maxDeletesPerWindow: c.maxDeletesPerWindow,
      sync: { concurrency: c.concurrency, maxDeleteFraction: c.maxDeleteFraction, allowEmptySource: c.allowEmptySource, conflictPolicy: c.conflictPolicy, verify: c.verify },
    });
    this.router = Router();
    this.router.post('/sync-now', express.json(), async (_req, res) => {
      if (!this.standby) {
        res.status(409).json({ error: 'REPO_FAILED', message: 'not a standby: nothing to pull' });
        return;
      }
      try {
        // Always a listing pass: a switchover must not rest on the hint alone.
        const r = await this.replicator.syncOnce();
        const st = this.replicator.status();
        res.json({ ok: st.objectsBehind === 0 && r.failed === 0, objectsBehind: st.objectsBehind, copied: r.copied, error: st.lastError } satisfies SyncNowReply);
      } catch (err) {
        res.json({ ok: false, objectsBehind: -1, copied: 0, error: errorMessage(err) } satisfies SyncNowReply);
      }
    });
  }

  /** The agent calls this on every role change to standby (via onFollow) and at start. */
  async onFollow(): Promise<void> {
    this.startPulling();
  }

  private startPulling(): void {
    if (!this.opts.config.enabled) return;
    void this.watch?.stop();
    this.standby = true;
    this.replicator.start();
  }

  async onPromote(): Promise<void> {
    this.standby = false;
    await this.replicator.stop();
    // Not awaited: promotion must not wait for a walk of the tree; the hint reads "not ok" until it is done.
    void this.watch?.start();
  }

  async onDemote(ctx: HookContext & { to: 'standby' | 'fenced' }): Promise<void> {
    await this.watch?.stop();
    if (ctx.to === 'standby') this.startPulling();
  }

  /** The peer's repo status from a heartbeat: keep its change hint (never going back within one watcher instance). */
  onPeerStatus(status: Record<string, unknown> | undefined, info: { heartbeatMs: number }): void {
    const hint = parseHint(status?.changeHint);
    const prev = this.peerHint?.hint;
    // Datagrams on different paths may arrive out of order: an older generation is old news.
    if (hint && prev && prev.instance === hint.instance && hint.generation < prev.generation) return;
    this.peerHint = hint ? { hint, at: this.clock.monotonicMs(), freshMs: Math.max(3 * info.heartbeatMs, 50) } : null;
    this.replicator.hintChanged();
  }

  private currentPeerHint(): RepoChangeHint | null {
    const p = this.peerHint;
    if (!p || this.clock.monotonicMs() - p.at > p.freshMs) return null;
    return p.hint;
  }

  async beforeHandover(ctx: HookContext): Promise<void> {
    if (!this.opts.config.enabled || !ctx.peer) return;
    const peer = ctx.peer;
    const reply = await Promise.any(peer.urls.map((u) => ctx.transport.post<SyncNowReply>(u, '/peer/repo/sync-now', {}, 120_000)));
    if (!reply.ok) throw new Error(`repository not caught up on ${peer.node}: ${reply.objectsBehind} objects behind${reply.error ? ` (${reply.error})` : ''}`);
  }

  /** On a standby: the last pass left nothing behind and did not fail. */
  caughtUp(): boolean {
    if (!this.opts.config.enabled || !this.standby) return true;
    const s = this.replicator.status();
    return s.running && s.passes > 0 && s.objectsBehind === 0 && s.lastError === null;
  }

  status(): Record<string, unknown> {
    const s = this.replicator.status();
    return { role: this.standby ? 'pulling' : 'idle', ...s, changeHint: this.watch ? this.watch.hint() : null, watch: this.watch ? this.watch.stats() : null };
  }

  /** For the peer: the change hint its standby side reads, and how far behind this side is. */
  peerStatus(): Record<string, unknown> {
    const s = this.replicator.status();
    const hint = this.watch ? this.watch.hint() : null;
    // The watcher's error can quote a long path: keep the datagram small.
    const changeHint = hint && hint.error && hint.error.length > 120 ? { ...hint, error: `${hint.error.slice(0, 117)}...` } : hint;
    return { role: this.standby ? 'pulling' : 'idle', objectsBehind: s.objectsBehind, ok: s.lastError === null, changeHint };
  }

  async close(): Promise<void> {
    await this.watch?.stop();
    await this.replicator.stop();
  }
}
