import express, { Router } from 'express';
import type { Clock, ObjectStore } from '../../ports.js';
import type { HookContext, PeerRef, RoleHooks } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import { errorMessage } from '../../errors.js';
import { systemClock } from '../../clock.js';
import type { RepoConfig } from './config.js';
import { RepoReplicator } from './replicator.js';
import { RepoChangeWatch } from './change-watch.js';
import { parseHint, type RepoChangeHint } from './hint.js';
import { FrontGuard, type LoneWrite } from './front-guard.js';
import { SOURCE_ETAG_META, sourceEtagMeta } from './types.js';
import { QuarantineKeeper } from './quarantine-keeper.js';
import { retentionFromDays, TombstoneJournal } from '../tombstones.js';
import { z } from 'zod';

/** How often quarantined objects are checked against repo.quarantine.keepDays. */
const QUARANTINE_EXPIRY_EVERY_MS = 6 * 3_600_000;

/** Keys per tombstone query (the peer routes take 1 MiB bodies; S3 keys are at most 1,024 bytes). */
const TOMBSTONE_QUERY_KEYS = 500;
/** Least time between two passes the front asks of the standby while it waits to name it. */
const PASS_REQUEST_MIN_GAP_MS = 1000;
/**
 * Target objects written this recently before a pass's listings are neither deleted nor overwritten by
 * it (the next pass decides): wider than a listing takes and than S3's one-second LastModified.
 */
const RECENT_WRITE_GRACE_MS = 5000;
/** The peer's URLs, those on a heartbeat path that answers first (all of them when it lists none). */
function liveFirst(peer: PeerRef): string[] {
  const urls = peer.ordered ? peer.ordered() : peer.urls;
  return urls.length ? urls : peer.urls;
}
const tombstoneQuerySchema = z.object({ keys: z.array(z.string().min(1).max(1024)).max(TOMBSTONE_QUERY_KEYS) }).strict();
interface TombstoneReply {
  tombstones: Array<{ key: string; atMs: number; epoch?: number }>;
}

/** What the front tells the delete journal (S3 path-style `/bucket/key`). */
export interface RepoFrontJournal {
  /** Before a DELETE is acknowledged: resolves once the tombstone is durable. */
  deleted(path: string): Promise<void>;
}

/** The write-through front of mode sync (adapters/cumulus/front.ts), built by the composition root. */
export interface RepoFrontServer {
  start(): Promise<void>;
  close(): Promise<void>;
  readonly url: string;
  readonly stats: Record<string, number>;
}

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

  /** Mode sync: the primary's guard (null while not primary), the front and its probe of the standby's repository. */
  private guard: FrontGuard | null = null;
  readonly front: RepoFrontServer | null;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  /** The front's request for a standby pass (requestStandbyPass). */
  private readonly passRequest = { inFlight: false, lastAt: -Infinity };
  private peerPuller: { passes: number; objectsBehind: number; ok: boolean } | null = null;
  /** Merge-back of a rejoin's quarantined objects, and quarantine retention. */
  readonly quarantine: QuarantineKeeper;
  private expiryTimer: NodeJS.Timeout | null = null;
  /** This node's delete journal: deletes acknowledged by its front or applied by its puller. */
  readonly tombstones: TombstoneJournal;
  private epoch: number | undefined;
  /** The primary's sidecar, while following it (the keeper asks it for tombstones). */
  private follow: { ctx: HookContext } | null = null;

  constructor(
    private readonly opts: {
      config: RepoConfig;
      local: ObjectStore;
      peer: ObjectStore;
      bus: EventBus;
      clock?: Clock;
      watch?: RepoChangeWatch;
      /** Mode sync: builds the front around the current guard (null: not primary, writes refused). */
      front?: (guard: () => FrontGuard | null, journal: RepoFrontJournal) => RepoFrontServer;
      /** The delete journal's file (JSON lines); without it the journal lives in memory only. */
      tombstoneFile?: string;
      /** How recent a standby object must be for a pass to leave it to the next pass (default: RECENT_WRITE_GRACE_MS in mode sync, 0 in async). */
      recentWriteGraceMs?: number;
    },
  ) {
    const c = opts.config;
    this.tombstones = new TombstoneJournal(opts.tombstoneFile ?? null, { retentionMs: retentionFromDays(c.quarantine.keepDays), now: () => (opts.clock ?? systemClock).nowMs() });
    this.clock = opts.clock ?? systemClock;
    this.watch = opts.watch ?? (c.watchDir ? new RepoChangeWatch(c.watchDir) : null);
    this.quarantine = new QuarantineKeeper({
      local: opts.local,
      peer: opts.peer,
      policy: c.quarantine.policy,
      keepDays: c.quarantine.keepDays,
      emit: (e) => opts.bus.emit(e),
      now: () => this.clock.nowMs(),
      primaryTombstones: (keys) => this.primaryTombstones(keys),
    });
    this.replicator = new RepoReplicator({
      onPass: () => {
        const st = this.replicator.status();
        if (this.standby && this.quarantine.rejoining) void this.quarantine.afterPass(st.objectsBehind === 0 && st.lastError === null);
      },
      changeHint: () => this.currentPeerHint(),
      changeHintFreshUntil: () => (this.peerHint ? this.peerHint.at + this.peerHint.freshMs : null),
      // A bump reaches this node in the next heartbeat: allow a few before calling a listed write missed.
      changeHintGraceMs: () => Math.max(1000, this.peerHint?.freshMs ?? 0),
      fullPassMaxAgeMs: c.fullPassMaxAgeMs,
      source: opts.peer,
      target: opts.local,
      bus: opts.bus,
      clock: opts.clock,
      intervalMs: c.intervalMs,
      deepVerifyCron: c.deepVerifyCron,
      deleteWindowMs: c.deleteWindowMs,
      maxDeletesPerWindow: c.maxDeletesPerWindow,
      sync: { concurrency: c.concurrency, maxDeleteFraction: c.maxDeleteFraction, allowEmptySource: c.allowEmptySource, conflictPolicy: c.conflictPolicy, verify: c.verify,
        // The puller's deletes go into the journal first; a copy drops the key's tombstone.
        beforeDelete: (key) => this.tombstones.deleted(key, this.epoch),
        afterCopy: (key) => void this.tombstones.written(key).catch(() => undefined),
        // A write the sync front sent to both nodes between the pass's two listings is on this side
        // only as far as the pass can tell: it must not be taken for a delete. Without a front (async)
        // only the puller writes here, and nothing waits.
        deferRecentMs: opts.recentWriteGraceMs ?? (c.mode === 'sync' ? RECENT_WRITE_GRACE_MS : 0),
      },
    });
    const bucket = c.local.bucket;
    this.front =
      c.mode === 'sync' && opts.front
        ? opts.front(() => this.guard, {
            deleted: async (path) => {
              const key = keyOf(path, bucket);
              if (key !== null) await this.tombstones.deleted(key, this.epoch);
            },
          })
        : null;
    this.router = Router();
    // A rejoining standby asks which of the keys it would merge back this node deleted, and when.
    this.router.post('/tombstones', express.json({ limit: '1mb' }), async (req, res) => {
      const q = tombstoneQuerySchema.safeParse(req.body);
      if (!q.success) {
        res.status(400).json({ error: 'REPO_FAILED', message: `bad tombstone query: ${q.error.issues[0]?.message ?? 'invalid'}` });
        return;
      }
      try {
        const found = await this.tombstones.lookup(q.data.keys);
        res.json({ tombstones: [...found.values()] } satisfies TombstoneReply);
      } catch (err) {
        res.status(500).json({ error: 'REPO_FAILED', message: errorMessage(err) });
      }
    });
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
  async onFollow(ctx?: HookContext & { primary: string }): Promise<void> {
    if (ctx) {
      this.follow = { ctx };
      this.epoch = ctx.epoch;
    }
    this.startPulling();
  }

  /** The primary's tombstones of these keys (asked over the peer routes, like the other /peer calls). */
  private async primaryTombstones(keys: string[]): Promise<Map<string, { atMs: number }>> {
    const ctx = this.follow?.ctx;
    if (!ctx) throw new Error('the primary is not known yet: cannot ask it which keys it deleted');
    // No peer sidecar at all (a data path driven without a cluster): nothing to ask, nothing counts as deleted.
    const peer = ctx.peer;
    if (!peer) return new Map();
    const out = new Map<string, { atMs: number }>();
    for (let i = 0; i < keys.length; i += TOMBSTONE_QUERY_KEYS) {
      const body = { keys: keys.slice(i, i + TOMBSTONE_QUERY_KEYS) };
      const reply = await Promise.any(liveFirst(peer).map((u) => ctx.transport.post<TombstoneReply>(u, '/peer/repo/tombstones', body, 30_000)));
      for (const t of reply.tombstones ?? []) if (typeof t.key === 'string' && typeof t.atMs === 'number') out.set(t.key, { atMs: t.atMs });
    }
    return out;
  }

  private startPulling(): void {
    if (!this.opts.config.enabled) return;
    void this.watch?.stop();
    // onFollow comes every decision cycle: look for the rejoin marker once per stint as standby.
    if (!this.standby) void this.quarantine.checkRejoin();
    this.standby = true;
    this.replicator.start();
  }

  /** Mode sync: uploads are acknowledged only when the standby's repository has them too (or the record names this node alone). */
  syncMode(): boolean {
    return this.opts.config.mode === 'sync' && this.front !== null;
  }

  /** Start the front's listener (it refuses writes until this node is primary). */
  async start(): Promise<void> {
    await this.front?.start();
    if (this.opts.config.quarantine.keepDays > 0) {
      const expire = () => void this.quarantine.expire().catch(() => undefined);
      expire();
      this.expiryTimer = setInterval(expire, QUARANTINE_EXPIRY_EVERY_MS);
      this.expiryTimer.unref();
    }
  }

  async onPromote(ctx?: HookContext): Promise<void> {
    this.standby = false;
    this.follow = null;
    if (ctx) this.epoch = ctx.epoch;
    await this.replicator.stop();
    this.quarantine.stop();
    // Not awaited: the marker only matters once this node rejoins as standby (checkRejoin queues behind it).
    void this.quarantine.markPrimary({ node: ctx?.node ?? '', epoch: ctx?.epoch ?? 0 });
    if (this.syncMode() && ctx) this.startGuard(ctx);
    // Not awaited: promotion must not wait for a walk of the tree; the hint reads "not ok" until it is done.
    void this.watch?.start();
  }

  private startGuard(ctx: HookContext): void {
    this.stopGuard();
    const front = this.opts.config.front!;
    const now = () => this.clock.monotonicMs();
    this.guard = new FrontGuard({
      degradeAfterMs: front.degradeAfterMs,
      // After a failover the old primary is gone: do not refuse uploads for degradeAfterMs first.
      ...(ctx.takeover === 'failover' || !ctx.peer ? { standbyGoneSince: now() - front.degradeAfterMs } : {}),
      claim: (peerHolds) => ctx.holders.claim(this.name, peerHolds),
      verify: (writes) => this.standbyHoldsWrites(writes, Math.max(2 * front.probeMs, 1000)),
      emit: (e) => this.opts.bus.emit(e),
      requestPass: () => this.requestStandbyPass(ctx),
      now,
    });
    this.guard.peerPuller(this.peerPuller);
    const probe = async () => {
      const g = this.guard;
      if (!g || this.probing) return;
      this.probing = true;
      try {
        let up = false;
        try {
          await withTimeout(this.opts.peer.head('nha-front-probe'), Math.max(2 * front.probeMs, 1000));
          up = true;
        } catch {
          up = false;
        }
        if (this.guard === g) await g.tick(up);
      } finally {
        this.probing = false;
      }
    };
    void probe();
    this.probeTimer = setInterval(() => void probe(), front.probeMs);
    this.probeTimer.unref();
  }

  /**
   * Whether the standby's repository holds every write the primary acknowledged alone: the object with
   * that ETag (its own, or the source ETag the puller recorded when it copied in parts), or no object for
   * a delete. Read eight at a time; any failure or timeout says no (asked again at a later probe).
   */
  private async standbyHoldsWrites(writes: LoneWrite[], timeoutMs: number): Promise<boolean> {
    const bucket = this.opts.config.local.bucket;
    const todo = writes.map((w) => ({ w, key: keyOf(w.path, bucket) })).filter((x): x is { w: LoneWrite; key: string } => x.key !== null);
    for (let i = 0; i < todo.length; i += 8) {
      const answers = await Promise.all(
        todo.slice(i, i + 8).map(async ({ w, key }) => {
          const info = await withTimeout(this.opts.peer.head(key), timeoutMs);
          if (w.deleted) return info === null;
          if (info === null) return false;
          return w.etag === null || info.etag === w.etag || info.metadata?.[SOURCE_ETAG_META] === sourceEtagMeta(w.etag);
        }),
      );
      if (answers.some((ok) => !ok)) return false;
    }
    return true;
  }

  /**
   * The front waits to name the standby: ask it for a listing pass (`/peer/repo/sync-now`), one request
   * at a time and at most one a second, so a quiet repository does not wait for the puller's full-pass
   * pacing. The pass count reaches the guard with the next heartbeat.
   */
  private requestStandbyPass(ctx: HookContext): void {
    const now = this.clock.monotonicMs();
    const peer = ctx.peer;
    if (!peer || this.passRequest.inFlight || now - this.passRequest.lastAt < PASS_REQUEST_MIN_GAP_MS) return;
    this.passRequest.inFlight = true;
    this.passRequest.lastAt = now;
    void Promise.any(liveFirst(peer).map((u) => ctx.transport.post<SyncNowReply>(u, '/peer/repo/sync-now', {}, 120_000)))
      .catch(() => undefined)
      .finally(() => {
        this.passRequest.inFlight = false;
        this.passRequest.lastAt = this.clock.monotonicMs();
      });
  }

  private stopGuard(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    this.guard = null;
  }

  async onDemote(ctx: HookContext & { to: 'standby' | 'fenced' }): Promise<void> {
    this.stopGuard();
    await this.watch?.stop();
    if (ctx.to === 'standby') {
      this.follow = { ctx };
      this.startPulling();
    }
  }

  /** The peer's repo status from a heartbeat: keep its change hint (never going back within one watcher instance). */
  onPeerStatus(status: Record<string, unknown> | undefined, info: { heartbeatMs: number }): void {
    const hint = parseHint(status?.changeHint);
    const prev = this.peerHint?.hint;
    // Datagrams on different paths may arrive out of order: an older generation is old news.
    if (hint && prev && prev.instance === hint.instance && hint.generation < prev.generation) return;
    this.peerHint = hint ? { hint, at: this.clock.monotonicMs(), freshMs: Math.max(3 * info.heartbeatMs, 50) } : null;
    // The standby's puller: the front's guard names it in the record once it passed cleanly.
    const passes = status?.passes;
    if (typeof passes === 'number' && typeof status?.objectsBehind === 'number') {
      this.peerPuller = { passes, objectsBehind: status.objectsBehind, ok: status.ok === true && status.role === 'pulling' };
      this.guard?.peerPuller(this.peerPuller);
    }
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
    return s.running && s.passes > 0 && s.objectsBehind === 0 && s.lastError === null && !this.quarantine.rejoining;
  }

  status(): Record<string, unknown> {
    const s = this.replicator.status();
    const front = this.front ? { url: this.front.url, state: this.guard?.state ?? 'off', standbyHolds: this.guard?.standbyHolds ?? false, ...this.front.stats } : null;
    return { role: this.standby ? 'pulling' : 'idle', mode: this.opts.config.mode, ...s, changeHint: this.watch ? this.watch.hint() : null, watch: this.watch ? this.watch.stats() : null, front, quarantine: this.quarantine.status(), tombstones: this.tombstones.size };
  }

  /** For the peer: the change hint its standby side reads, and how far behind this side is. */
  peerStatus(): Record<string, unknown> {
    const s = this.replicator.status();
    const hint = this.watch ? this.watch.hint() : null;
    // The watcher's error can quote a long path: keep the datagram small.
    const changeHint = hint && hint.error && hint.error.length > 120 ? { ...hint, error: `${hint.error.slice(0, 117)}...` } : hint;
    return { role: this.standby ? 'pulling' : 'idle', objectsBehind: s.objectsBehind, passes: s.passes, ok: s.lastError === null, changeHint };
  }

  async close(): Promise<void> {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
    this.quarantine.stop();
    this.stopGuard();
    await this.front?.close();
    await this.watch?.stop();
    await this.replicator.stop();
    await this.tombstones.close();
  }
}

/** Keys of a path-style `/bucket/key` in this bucket (null: another bucket, which this path does not replicate). */
function keyOf(path: string, bucket: string): string | null {
  const prefix = `/${bucket}/`;
  if (!path.startsWith(prefix)) return null;
  try {
    return decodeURIComponent(path.slice(prefix.length));
  } catch {
    return null;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms); })]).finally(() => clearTimeout(t));
}
