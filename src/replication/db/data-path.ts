import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Router } from 'express';
import type { Readable } from 'node:stream';
import type { Clock, DbEndpoint, DbStatus } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import { errorMessage, HaError } from '../../errors.js';
import { systemClock } from '../../clock.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';
import { promoteStandby, rejoinAsStandby } from './choreography.js';
import { ArchiveShipper } from './archive-shipper.js';
import { SyncGuard } from './sync-guard.js';
import { slotNameFor } from './wal-names.js';
import { ArchiveRetention, pruneOldCopies } from './archive-retention-runner.js';
import type { ArchiveReader } from './archive-retention.js';
import { archiveReaders, archiveRetention, markedForReclone } from './data-path-archive.js';
import { dataPathRouter } from './data-path-router.js';
import { StatusTicker } from './data-path-tick.js';
import { handOver } from './handover.js';
import { ServerWatch } from './server-watch.js';

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

/**
 * A standby is caught up when it streams and has replayed all but `maxLagBytes` of what it received.
 * Exactly zero holds under steady writes only between commits, so a switchover asked at a random
 * moment was refused again and again; the handover waits for the full replay anyway.
 */
export function standbyCaughtUp(s: Pick<DbStatus, 'mode' | 'streaming' | 'lagBytes'> | null | undefined, maxLagBytes: number): boolean {
  return !!s && s.mode === 'standby' && !!s.streaming && (s.lagBytes ?? 0) <= maxLagBytes;
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
  /** The status tick's timing (data-path-tick.ts); tickOnce is what a tick does. */
  private readonly ticker: StatusTicker;
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
  /** The local server as a monitored service (server-watch.ts: restart on the primary, then escalate). */
  private readonly watch: ServerWatch;
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
    this.watch = new ServerWatch({ ...this.deps, restart: o.config.restart, background: (what, fn) => this.background(what, fn) });
    this.router = dataPathRouter({ ...this.deps, emit: (e) => o.bus.emit(e), primary: () => this.primary, ready: () => this.ready });
    this.retention = archiveRetention(o.config, () => this.archiveReaders(), (e) => o.bus.emit(e));
    this.ticker = new StatusTicker({
      once: () => this.tickOnce(),
      dueInMs: () => (this.primary ? this.guard?.dueInMs() ?? null : null),
    });
  }

  private emit(type: string, severity: 'info' | 'warning' | 'critical', message: string, details?: Record<string, unknown>) {
    this.o.bus.emit({ type, severity, message, details });
  }

  /** What the collaborators (handover.ts, data-path-archive.ts, server-watch.ts, data-path-router.ts) read from this path. */
  private get deps() {
    return {
      node: this.o.node,
      peerNode: this.o.peerNode,
      config: this.o.config,
      db: this.o.db,
      clock: this.clock,
      hasData: () => this.hasData(),
      emit: this.emit.bind(this),
    };
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
    return !(this.primary && this.ready && !this.watch.healthy);
  }

  /** The primary's server could not be restarted within the policy: hand over. */
  escalated(): boolean {
    return this.primary && this.ready && this.watch.escalated;
  }

  async onPromote(ctx?: HookContext): Promise<void> {
    this.primary = true;
    this.followed = null;
    this.watch.reset();
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
    const setReady = (ready: boolean) => {
      this.ready = ready;
    };
    await handOver({ ...this.deps, syncMode: () => this.syncMode(), setReady }, ctx);
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
      if (await markedForReclone(this.o.node, ctx)) {
        // The primary's archive hard cap removed WAL this standby needed: following would wait forever.
        const t0 = this.clock.monotonicMs();
        const r = await this.o.db.clone(await fetchBackup(), peer, { force: true });
        this.emit('db.cloned', 'warning', `standby re-cloned from ${ctx.primary} in ${Math.round(this.clock.monotonicMs() - t0)} ms: the primary's WAL archive no longer held what it needed`, { bytes: r.bytes, reason: 'archive_cap' });
        return;
      }
      await rejoinAsStandby(this.o.db, peer, fetchBackup, { clock: this.clock, emit: (e) => this.o.bus.emit(e) });
    });
  }

  /** Who still reads the local WAL archive (data-path-archive.ts). */
  private archiveReaders(): Promise<ArchiveReader[]> {
    return archiveReaders(this.deps, this.primary);
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
        if (await markedForReclone(this.o.node, { transport: this.transport, peer: { urls: [this.peerUrl] } as HookContext['peer'] })) this.followed = null;
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

  /** The local server as a monitored service (server-watch.ts), fed with this tick's status read. */
  private watchServer(): void {
    const s = this.cached;
    if (this.primary) {
      this.watch.primary(s, this.ready);
      return;
    }
    // Standby: a server that died after following is brought back by following again.
    if (this.watch.standby(s, () => this.followed !== null && this.pending === 0 && this.hasData())) this.followed = null;
  }

  caughtUp(): boolean {
    if (this.primary) return true;
    return standbyCaughtUp(this.cached, this.o.config.caughtUpLagBytes);
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
      server: this.primary ? (this.watch.escalated ? 'escalated' : this.watch.healthy ? 'ok' : 'down') : s?.running ? 'ok' : 'down',
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
    this.ticker.stop();
    this.shipper?.stop();
    this.retention.unwatch();
    await this.busy?.catch(() => undefined);
    await this.o.db.stop('fast').catch(() => undefined);
  }
}
