import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { Router } from 'express';
import type { Readable } from 'node:stream';
import type { Clock, DbEndpoint, DbStatus } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import { errorMessage, HaError } from '../../errors.js';
import { systemClock } from '../../clock.js';
import { everyOnGrid, type GridTimer } from '../../util/cadence.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';
import { promoteStandby, rejoinAsStandby } from './choreography.js';
import { ArchiveShipper } from './archive-shipper.js';
import { SyncGuard } from './sync-guard.js';
import { dbPeerRouter } from './router.js';
import { lsnToBytes } from './lsn.js';
import { slotNameFor } from './wal-names.js';
import { ArchiveRetention, pruneOldCopies, readRecloneMarks, restartPointOf, writeRecloneMarks } from './archive-retention-runner.js';
import type { ArchiveReader } from './archive-retention.js';
import { evaluateProbe, initialPolicyState, type PolicyState } from '../../monitor/policy.js';
import type { PolicyConfig } from '../../monitor/config.js';

/** The local server: the port's operations plus initialisation and slots. */
export type LocalDatabase = ManagedDatabase & {
  init(opts?: { template?: string }): Promise<void>;
  ensureSlot(slot: string): Promise<void>;
  readonly slotName: string;
  /** Renewed TLS files: the server reads them again (without TLS: nothing). */
  reloadTls?(): Promise<void>;
};

/**
 * How often an idle primary looks for slots whose WAL was removed. A standby behind such a slot already
 * restores from the WAL archive; the repair only lets it stream again, so seconds do not matter, and the
 * query would otherwise double the primary's status round trips.
 */
const SLOT_CHECK_MS = 10_000;
/** How often the local server's status is read (for /status, the standby's catch-up and the sync guard). */
const STATUS_TICK_MS = 1000;
/** How early or late a status read may come against its grid point (forgiven by the sync guard). */
const STATUS_JITTER_MS = 50;
/** How often the WAL archive retention runs (both roles). */
const RETENTION_MS = 30_000;
/** Pause before asking a primary that answered "not ready yet" (503) for its base backup again. */
const NOT_READY_RETRY_MS = 500;

/** Whether a follow failed only because the primary answered 503 (promotion under way) on some path. */
export function primaryNotReady(err: unknown): boolean {
  const all = err instanceof AggregateError ? err.errors : [err];
  return all.some((e) => e instanceof HaError && e.details?.status === 503);
}

interface ReplayReply {
  ok: boolean;
  replayLsn: string | null;
  message: string;
}

/**
 * PostgreSQL log shipping as a data path of the agent. The primary runs the server writable, ships WAL
 * archives to the standby and keeps the synchronous-standby setting right; a standby clones from the
 * primary when it has no data, follows it, and re-clones (keeping its old data aside) when it wrote
 * after the fork. Long work (clone, rejoin) runs in the background so the decision loop never waits.
 */
export class DbDataPath implements RoleHooks {
  readonly name = 'db';
  readonly router: Router;
  private primary = false;
  private shipper: ArchiveShipper | null = null;
  private guard: SyncGuard | null = null;
  private tickTimer: GridTimer | null = null;
  /** A read ahead of the grid, when the sync guard's degrade falls due before the next grid tick. */
  private dueTimer: NodeJS.Timeout | null = null;
  private ticking = false;
  private closed = false;
  private cached: DbStatus | null = null;
  /** When the primary last looked for lost slots (a rare repair: every SLOT_CHECK_MS, not every tick). */
  private slotsCheckedAt = -Infinity;
  private busy: Promise<void> | null = null;
  private pending = 0;
  private followed: string | null = null;
  private lastError: string | null = null;
  /** The server accepts writes and can serve base backups (set at the end of onPromote). */
  private ready = false;
  private retryAt = 0;
  private readonly clock: Clock;
  /** The local server as a monitored service (restart on the primary, then escalate). */
  private monitor: PolicyState = initialPolicyState();
  private readonly policy: PolicyConfig;
  private restarting = false;
  /** A standby whose server died was seen (event once per incident). */
  private standbyDownReported = false;
  private holders: HookContext['holders'] | null = null;
  /** WAL archive retention (archive-retention-runner.ts), and when it last ran. */
  readonly retention: ArchiveRetention;
  private retentionAt = -Infinity;

  constructor(
    private readonly o: {
      node: string;
      peerNode: string | null;
      config: DbConfig;
      db: LocalDatabase;
      bus: EventBus;
      clock?: Clock;
      /** Endpoint of the peer's PostgreSQL as reachable from here. */
      peerEndpoint: DbEndpoint | null;
    },
  ) {
    this.clock = o.clock ?? systemClock;
    this.policy = {
      failuresBeforeAction: 2,
      maxRestarts: o.config.restart.maxRestarts,
      windowMs: o.config.restart.windowMs,
      backoff: { baseMs: 1000, maxMs: 10_000 },
      recoverAfter: 2,
    };
    const inner = dbPeerRouter({
      archiveDir: o.config.archiveDir,
      baseBackup: (opts) => {
        if (!this.primary || !this.ready) throw new HaError('DB_FAILED', 'not a ready primary: no base backup here yet', { notReady: true });
        return o.db.baseBackup(opts);
      },
      onEvent: (e) => {
        if (e.kind !== 'archive-received') o.bus.emit({ type: `db.${e.kind}`, severity: e.kind === 'basebackup-failed' ? 'warning' : 'info', message: `${e.kind}${e.peer ? ` for ${e.peer}` : ''}${e.error ? `: ${e.error}` : ''}`, details: { bytes: e.bytes } });
      },
    });
    this.router = Router();
    this.router.post('/wait-replay', express.json(), async (req, res) => {
      const lsn = String(req.body?.lsn ?? '');
      const timeoutMs = Math.min(Number(req.body?.timeoutMs ?? 30_000), 120_000);
      res.json(await this.waitReplay(lsn, timeoutMs));
    });
    // Which standbys the hard cap of this primary's WAL archive marked for re-clone.
    this.router.post('/reclone', async (_req, res) => {
      res.json({ readers: this.primary ? await readRecloneMarks(o.config.archiveDir) : [] });
    });
    this.router.use(inner);
    this.retention = new ArchiveRetention({
      archiveDir: o.config.archiveDir,
      policy: {
        maxAgeMs: o.config.archiveRetention.maxAgeHours * 3_600_000,
        keepBytes: o.config.archiveRetention.keepMb * 1024 * 1024,
        maxBytes: o.config.archiveMaxBytes,
        // One segment of room under the cap: the next segment to land fits before the pass it starts.
        headroomBytes: o.config.archiveMaxBytes >= 4 * o.config.walSegmentSizeMb * 1024 * 1024 ? o.config.walSegmentSizeMb * 1024 * 1024 : 0,
        segmentBytes: o.config.walSegmentSizeMb * 1024 * 1024,
      },
      readers: () => this.archiveReaders(),
      emit: (e) => o.bus.emit(e),
    });
    // On the 1 s wall-clock grid, so the status read shares the heartbeat tick's wake-up.
    this.tickTimer = everyOnGrid(STATUS_TICK_MS, () => void this.tick(), { unref: true });
  }

  private emit(type: string, severity: 'info' | 'warning' | 'critical', message: string, details?: Record<string, unknown>) {
    this.o.bus.emit({ type, severity, message, details });
  }

  /** Runs long work one at a time in the background; failures become events, never exceptions. */
  private background(what: string, fn: () => Promise<void>): void {
    this.pending++;
    const run = async () => {
      try {
        await fn();
        this.lastError = null;
      } catch (err) {
        if (what.startsWith('follow') && primaryNotReady(err)) {
          // Expected while the primary is still promoting (every cluster start): ask again soon, without
          // a critical event; /status still shows what the standby waits for.
          this.lastError = `${what}: the primary is not ready yet (${errorMessage(err)})`;
          this.followed = null;
          this.retryAt = this.clock.monotonicMs() + NOT_READY_RETRY_MS;
          return;
        }
        this.lastError = `${what}: ${errorMessage(err)}`;
        this.emit('db.failed', 'critical', `database ${what} failed: ${errorMessage(err)}`, { code: (err as HaError).code });
        if (what.startsWith('follow')) {
          this.followed = null; // retried by a later onFollow, after a pause
          this.retryAt = this.clock.monotonicMs() + 2000;
        }
      } finally {
        this.pending--;
      }
    };
    this.busy = (this.busy ?? Promise.resolve()).then(run);
  }

  /** Whether the data directory holds a cluster. Never starts the server: a former primary started as
   * a primary would write WAL the new primary does not have and force a re-clone. */
  private hasData(): boolean {
    return existsSync(join(this.o.config.dataDir, 'PG_VERSION'));
  }

  /** Commits wait for the standby: the cluster keeps the data-holder record for this path. */
  syncMode(): boolean {
    return this.o.config.sync === 'sync';
  }

  /** False while the primary's server is down (restarting, or given up on). */
  healthy(): boolean {
    return !(this.primary && this.ready && !this.monitor.healthy);
  }

  /** The primary's server could not be restarted within the policy: hand over. */
  escalated(): boolean {
    return this.primary && this.ready && this.monitor.escalated;
  }

  async onPromote(ctx?: HookContext): Promise<void> {
    this.primary = true;
    this.followed = null;
    this.monitor = initialPolicyState();
    if (ctx) {
      this.holders = ctx.holders;
      // A node primary from boot never followed: without this its archive shipper had no peer to ship to.
      this.remember(ctx);
    }
    await this.busy; // a clone or rejoin in flight must finish before we decide what to promote
    const t0 = this.clock.monotonicMs();
    const s = await this.o.db.status().catch(() => null);
    if (!s || !s.running) {
      if (!this.hasData()) {
        await this.o.db.init();
        this.emit('db.initialized', 'info', 'database initialized on the first primary');
      }
      await this.o.db.start();
    }
    const now = await this.o.db.status();
    if (now.mode === 'standby') await promoteStandby(this.o.db, { clock: this.clock, emit: (e) => this.o.bus.emit(e) });
    else await this.o.db.unfenceWrites().catch(() => undefined);
    if (this.o.peerNode) await this.o.db.ensureSlot(slotNameFor(this.o.peerNode)).catch(() => undefined);
    this.shipper = new ArchiveShipper({ archiveDir: this.o.config.archiveDir, transport: this.transport!, peerUrl: () => this.peerUrl, emit: (e) => this.o.bus.emit(e) });
    this.shipper.start(1000);
    if (this.o.peerNode) {
      this.guard = new SyncGuard(this.o.db, {
        mode: this.o.config.sync,
        standbyName: this.o.peerNode,
        onStandbyLoss: this.o.config.onStandbyLoss,
        degradeAfterMs: this.o.config.degradeAfterMs,
        jitterMs: STATUS_JITTER_MS,
        position: async () => (await this.o.db.status()).position?.bytes ?? null,
        claim: (peerHolds) => this.holders?.claim(this.name, peerHolds) ?? Promise.resolve(true),
        // After a failover there is nobody to wait for: do not block commits first.
        ...(ctx?.takeover === 'failover' ? { standbyGoneSince: this.clock.monotonicMs() - this.o.config.degradeAfterMs } : {}),
        clock: this.clock,
        emit: (e) => this.o.bus.emit(e),
      });
      await this.guard.tick().catch(() => undefined);
    }
    this.ready = true;
    this.emit('db.primary', 'info', `database writable in ${Math.round(this.clock.monotonicMs() - t0)} ms`);
  }

  private transport: HookContext['transport'] | null = null;
  private peerRef: HookContext['peer'] = null;

  /** The peer's URL on a heartbeat path that answers now (the first configured one when none does). */
  private get peerUrl(): string | null {
    const p = this.peerRef;
    return (p?.ordered ? p.ordered() : p?.urls)?.[0] ?? null;
  }

  private remember(ctx: HookContext): void {
    this.transport = ctx.transport;
    this.peerRef = ctx.peer;
  }

  async onDemote(ctx: HookContext & { to: 'standby' | 'fenced'; rejoin: boolean }): Promise<void> {
    this.remember(ctx);
    const wasPrimary = this.primary;
    this.primary = false;
    this.ready = false;
    this.shipper?.stop();
    this.shipper = null;
    this.guard = null;
    if (wasPrimary) {
      // No second writer: stop accepting writes at once; the rejoin (on seeing the new primary) follows.
      await this.o.db.fenceWrites().catch(() => undefined);
    }
  }

  async beforeHandover(ctx: HookContext): Promise<void> {
    this.remember(ctx);
    const t0 = this.clock.monotonicMs();
    const s = await this.o.db.status().catch(() => null);
    if (!s?.running) {
      // The server died and could not be restarted: nothing can be written here any more. The standby
      // has every acknowledged commit when the data-holder record names it (or, asynchronously, what
      // reached it is all there is).
      if (!ctx.peerIsHolder && this.syncMode()) {
        throw new HaError('SWITCHOVER_REFUSED', 'the local database is down and the standby is not named in the data-holder record: it may lack acknowledged commits');
      }
      this.ready = false;
      this.emit('db.handover', 'warning', `database down: handing over without a final position (${ctx.peerIsHolder ? 'the standby holds every acknowledged commit' : 'asynchronous replication: what reached the standby is kept'})`);
      return;
    }
    this.ready = false;
    const final = await this.o.db.fenceWrites();
    const peer = ctx.peer;
    if (!peer) return;
    let reply: ReplayReply;
    try {
      reply = await Promise.any(peer.urls.map((u) => ctx.transport.post<ReplayReply>(u, '/peer/db/wait-replay', { lsn: final.lsn, timeoutMs: this.o.config.catchUpTimeoutMs }, this.o.config.catchUpTimeoutMs + 2000)));
    } catch (err) {
      await this.o.db.unfenceWrites().catch(() => undefined);
      this.ready = true;
      throw new HaError('SWITCHOVER_REFUSED', `standby did not confirm replay of ${final.lsn}: ${errorMessage(err)}`);
    }
    if (!reply.ok) {
      await this.o.db.unfenceWrites().catch(() => undefined);
      this.ready = true;
      throw new HaError('SWITCHOVER_REFUSED', `standby has not replayed ${final.lsn} (at ${reply.replayLsn ?? 'unknown'}): ${reply.message}`);
    }
    // Stop cleanly so every WAL record is on the standby; the rejoin then follows without a re-clone.
    await this.o.db.stop('fast');
    this.emit('db.handover', 'info', `writes stopped at ${final.lsn}; standby replayed it (${Math.round(this.clock.monotonicMs() - t0)} ms)`, { lsn: final.lsn });
  }

  /**
   * The handover was aborted after this path had stopped the server (a later data path failed): this
   * node stays primary, so start it again and accept writes. No other node promoted (the role is offered
   * only after every data path finished), so starting it as a primary cannot fork anything.
   */
  async onHandoverAborted(): Promise<void> {
    if (!this.primary) return;
    const t0 = this.clock.monotonicMs();
    const s = await this.o.db.status().catch(() => null);
    const restart = !s?.running;
    if (restart) await this.o.db.start();
    await this.o.db.unfenceWrites();
    this.ready = true;
    if (restart) this.emit('db.resumed', 'warning', `handover aborted: database started again and writable in ${Math.round(this.clock.monotonicMs() - t0)} ms`);
  }

  /** On the standby: wait until the local replay position reaches `lsn`. */
  private async waitReplay(lsn: string, timeoutMs: number): Promise<ReplayReply> {
    let want: number;
    try {
      want = lsnToBytes(lsn);
    } catch {
      return { ok: false, replayLsn: null, message: `not an LSN: ${lsn}` };
    }
    const until = this.clock.monotonicMs() + timeoutMs;
    let last: DbStatus | null = null;
    while (this.clock.monotonicMs() < until) {
      last = await this.o.db.status().catch(() => null);
      if (last?.position && last.position.bytes >= want) return { ok: true, replayLsn: last.position.lsn, message: 'replayed' };
      await this.clock.sleep(20);
    }
    return { ok: false, replayLsn: last?.position?.lsn ?? null, message: `not replayed within ${timeoutMs} ms` };
  }

  async onFollow(ctx: HookContext & { primary: string }): Promise<void> {
    this.remember(ctx);
    const key = `${ctx.primary}@${ctx.epoch}`;
    if (this.followed === key || this.primary || this.clock.monotonicMs() < this.retryAt) return;
    this.followed = key;
    const peer = this.o.peerEndpoint;
    if (!peer || !ctx.peer) return;
    const slot = this.o.db.slotName;
    const fetchBackup = (): Promise<Readable> =>
      Promise.any(ctx.peer!.urls.map((u) => ctx.transport.getStream(u, `/peer/db/basebackup?slot=${slot}`, this.o.config.cloneTimeoutMs)));
    this.background(`follow ${ctx.primary}`, async () => {
      const s = await this.o.db.status().catch(() => null);
      const running = !!s?.running;
      if (!running && !this.hasData()) {
        const t0 = this.clock.monotonicMs();
        const r = await this.o.db.clone(await fetchBackup(), peer, { force: false });
        this.emit('db.cloned', 'info', `standby cloned from ${ctx.primary} in ${Math.round(this.clock.monotonicMs() - t0)} ms`, { bytes: r.bytes });
        return;
      }
      const now = await this.o.db.status().catch(() => null);
      if (now?.mode === 'standby' && now.streaming) return; // already following
      if (await this.markedForReclone(ctx)) {
        // The primary's archive hard cap removed WAL this standby needed: following would wait forever.
        const t0 = this.clock.monotonicMs();
        const r = await this.o.db.clone(await fetchBackup(), peer, { force: true });
        this.emit('db.cloned', 'warning', `standby re-cloned from ${ctx.primary} in ${Math.round(this.clock.monotonicMs() - t0)} ms: the primary's WAL archive no longer held what it needed`, { bytes: r.bytes, reason: 'archive_cap' });
        return;
      }
      await rejoinAsStandby(this.o.db, peer, fetchBackup, { clock: this.clock, emit: (e) => this.o.bus.emit(e) });
    });
  }

  /** Whether the primary marked this node for re-clone (its archive hard cap removed WAL we needed). */
  private async markedForReclone(ctx: { transport: HookContext['transport']; peer?: HookContext['peer'] }): Promise<boolean> {
    if (!ctx.peer) return false;
    try {
      const r = await Promise.any(ctx.peer.urls.map((u) => ctx.transport.post<{ readers: string[] }>(u, '/peer/db/reclone', {}, 5000)));
      return r.readers.includes(this.o.node);
    } catch {
      return false;
    }
  }

  /**
   * Who still reads the local WAL archive. Primary: every slot from its restart_lsn (the peer's slot
   * under the peer's name; a lost slot or a missing one: unknown), except standbys already marked for
   * re-clone (a base backup needs no archive); a marked standby that streams again is unmarked.
   * Standby: its own server from its last restart point (pg_control), unknown without data.
   */
  private async archiveReaders(): Promise<ArchiveReader[]> {
    const dir = this.o.config.archiveDir;
    if (!this.primary) {
      return [{ name: this.o.node, restartBytes: this.hasData() ? await restartPointOf(this.o.config.dataDir) : null }];
    }
    const peer = this.o.peerNode;
    const peerSlot = peer ? slotNameFor(peer) : null;
    let marks = await readRecloneMarks(dir);
    if (marks.length) {
      const streaming = new Set((await this.o.db.replicas()).filter((r) => r.state === 'streaming').map((r) => r.name));
      const still = marks.filter((m) => !streaming.has(m));
      if (still.length !== marks.length) {
        await writeRecloneMarks(dir, still);
        this.emit('db.archive.reclone_done', 'info', `standby ${marks.filter((m) => streaming.has(m)).join(', ')} streams again: no longer marked for re-clone`);
        marks = still;
      }
    }
    const out: ArchiveReader[] = (await this.o.db.slots()).map((sl) => ({
      name: sl.name === peerSlot && peer ? peer : sl.name,
      restartBytes: sl.walStatus === 'lost' || !sl.restartLsn ? null : lsnToBytes(sl.restartLsn),
    }));
    if (peer && !out.some((r) => r.name === peer)) out.push({ name: peer, restartBytes: null });
    return out.filter((r) => !marks.includes(r.name));
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.tickOnce();
    } finally {
      this.ticking = false;
    }
    this.scheduleDue();
  }

  /** A hung or gone standby costs commits degradeAfterMs plus one status read, not plus a grid period. */
  private scheduleDue(): void {
    if (this.dueTimer || this.closed || !this.primary) return;
    const due = this.guard?.dueInMs() ?? null;
    if (due === null || due >= STATUS_TICK_MS) return;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = null;
      void this.tick();
    }, Math.max(10, due));
    this.dueTimer.unref();
  }

  private async tickOnce(): Promise<void> {
    try {
      this.cached = await this.o.db.status();
    } catch {
      this.cached = null;
    }
    this.watchServer();
    const at = this.clock.monotonicMs();
    if (at - this.retentionAt >= RETENTION_MS && (this.primary ? this.ready : this.cached?.running)) {
      this.retentionAt = at;
      await this.retention.watch(() => !this.closed && (this.primary ? this.ready : !!this.cached?.running));
      await this.retention.runOnce();
      if (!this.primary && this.cached?.streaming) {
        // Re-clones keep the replaced data directory and its WAL archive aside: the newest pair stays.
        await pruneOldCopies(this.o.config.dataDir, 1).catch(() => undefined);
        await pruneOldCopies(this.o.config.archiveDir, 1).catch(() => undefined);
      }
      if (!this.primary && this.cached?.running && !this.cached.streaming && this.transport && this.peerUrl && this.pending === 0) {
        if (await this.markedForReclone({ transport: this.transport, peer: { urls: [this.peerUrl] } as HookContext['peer'] })) this.followed = null;
      }
    }
    if (this.primary) {
      await this.guard?.tick(this.cached?.position?.bytes ?? null, this.cached?.syncWaitMs ?? null).catch(() => undefined);
      const now = this.clock.monotonicMs();
      if (now - this.slotsCheckedAt >= SLOT_CHECK_MS) {
        this.slotsCheckedAt = now;
        await this.o.db.repairSlots().catch(() => undefined);
      }
    }
  }

  /**
   * The local server as a monitored service. On the primary a dead server is restarted under the
   * restart policy (N restarts within a window, with back-off); when that fails the path escalates and
   * the agent hands over. A standby's dead server is started again by following the primary anew.
   */
  private watchServer(): void {
    const s = this.cached;
    const up = !!s?.running;
    if (this.primary) {
      if (!this.ready || this.restarting) return;
      const ok = up && s?.mode === 'primary';
      const { state, decision } = evaluateProbe(this.monitor, ok, this.clock.monotonicMs(), this.policy, 'active');
      this.monitor = state;
      if (decision.incidentOpened) this.emit('db.down', 'critical', `database on the primary is not running: ${decision.reason}`);
      if (decision.action === 'restart') {
        this.restarting = true;
        const t0 = this.clock.monotonicMs();
        this.background('restart', async () => {
          try {
            await this.o.db.start();
            this.emit('db.restarted', 'warning', `database restarted on the primary in ${Math.round(this.clock.monotonicMs() - t0)} ms (${decision.reason})`);
          } finally {
            this.restarting = false;
          }
        });
      } else if (decision.action === 'escalate') {
        this.emit('db.escalated', 'critical', `database on the primary could not be restarted: ${decision.reason}`);
      } else if (decision.action === 'recovered') {
        this.emit('db.recovered', 'info', `database on the primary serves again: ${decision.reason}`);
      }
      return;
    }
    // Standby: a server that died after following is brought back by following again.
    if (!up && this.followed !== null && this.pending === 0 && this.hasData()) {
      if (!this.standbyDownReported) {
        this.standbyDownReported = true;
        this.emit('db.down', 'warning', 'database on the standby is not running: starting it again as a standby of the primary');
      }
      this.followed = null;
    } else if (up && this.standbyDownReported && s?.mode === 'standby') {
      this.standbyDownReported = false;
      this.emit('db.recovered', 'info', 'database on the standby runs again');
    }
  }

  caughtUp(): boolean {
    if (this.primary) return true;
    const s = this.cached;
    return !!s && s.mode === 'standby' && !!s.streaming && (s.lagBytes ?? 0) === 0;
  }

  status(): Record<string, unknown> {
    const s = this.cached;
    return {
      role: this.primary ? 'primary' : 'standby',
      mode: s?.mode ?? 'unknown',
      running: s?.running ?? false,
      streaming: s?.streaming ?? null,
      lsn: s?.position?.lsn ?? null,
      timeline: s?.position?.timeline ?? null,
      lag_bytes: s?.lagBytes ?? null,
      lag_ms: this.primary ? null : s?.lagMs ?? null,
      sync: this.guard?.state ?? this.o.config.sync,
      standby_holds: this.guard?.standbyHolds ?? null,
      server: this.primary ? (this.monitor.escalated ? 'escalated' : this.monitor.healthy ? 'ok' : 'down') : s?.running ? 'ok' : 'down',
      busy: this.pending > 0,
      archive_bytes: this.retention.lastBytes,
      last_error: this.lastError,
    };
  }

  /** For the peer: where this server is and whether it follows. */
  peerStatus(): Record<string, unknown> {
    const { role, mode, streaming, lsn, timeline, lag_bytes, last_error } = this.status();
    return { role, mode, streaming, lsn, timeline, lag_bytes, ok: last_error === null };
  }

  /** The node's TLS files were renewed (TlsReloader): the local server takes them. */
  reloadTls(): Promise<void> {
    return this.o.db.reloadTls?.() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.tickTimer?.stop();
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueTimer = null;
    this.shipper?.stop();
    this.retention.unwatch();
    await this.busy?.catch(() => undefined);
    await this.o.db.stop('fast').catch(() => undefined);
  }
}
