import express, { Router } from 'express';
import type { Clock, ObjectStore } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../cluster/agent.js';
import type { EventBus } from '../../events/bus.js';
import { errorMessage } from '../../errors.js';
import type { RepoConfig } from './config.js';
import { RepoReplicator } from './replicator.js';

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
 */
export class RepoDataPath implements RoleHooks {
  readonly name = 'repo';
  readonly replicator: RepoReplicator;
  readonly router: Router;
  private standby = false;

  constructor(private readonly opts: { config: RepoConfig; local: ObjectStore; peer: ObjectStore; bus: EventBus; clock?: Clock }) {
    const c = opts.config;
    this.replicator = new RepoReplicator({
      source: opts.peer,
      target: opts.local,
      bus: opts.bus,
      clock: opts.clock,
      intervalMs: c.intervalMs,
      deepVerifyCron: c.deepVerifyCron,
      sync: { concurrency: c.concurrency, maxDeleteFraction: c.maxDeleteFraction, allowEmptySource: c.allowEmptySource, conflictPolicy: c.conflictPolicy, verify: c.verify },
    });
    this.router = Router();
    this.router.post('/sync-now', express.json(), async (_req, res) => {
      if (!this.standby) {
        res.status(409).json({ error: 'REPO_FAILED', message: 'not a standby: nothing to pull' });
        return;
      }
      try {
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
    this.standby = true;
    this.replicator.start();
  }

  async onPromote(): Promise<void> {
    this.standby = false;
    await this.replicator.stop();
  }

  async onDemote(ctx: HookContext & { to: 'standby' | 'fenced' }): Promise<void> {
    if (ctx.to === 'standby') this.startPulling();
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
    return { role: this.standby ? 'pulling' : 'idle', ...s };
  }

  async close(): Promise<void> {
    await this.replicator.stop();
  }
}
