/**
 * Near-real-time repository replication on the standby: an incremental pass every intervalMs (an idle
 * pass costs one listing per side), a deep verification pass on a node-cron schedule, never two passes
 * at once. status() feeds /status, /metrics and the /standby health check.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Clock, ObjectStore } from '../../ports.js';
import { HaError, errorMessage } from '../../errors.js';
import type { EventBus } from '../../events/bus.js';
import { systemClock } from '../../clock.js';
import { syncRepo, type MetadataCache, type SyncOptions, type SyncResult } from './engine.js';

export interface RepoReplicatorOptions {
  /** The primary's repository. */
  source: ObjectStore;
  /** This (standby) node's repository. */
  target: ObjectStore;
  bus?: Pick<EventBus, 'emit'>;
  clock?: Clock;
  /** Pause between incremental passes. Default 1000 ms. */
  intervalMs?: number;
  /** node-cron expression for the deep pass. Default daily at 03:17. Empty string: no schedule. */
  deepVerifyCron?: string;
  /** Options handed to every pass. */
  sync?: Pick<SyncOptions, 'concurrency' | 'maxDeleteFraction' | 'allowEmptySource' | 'conflictPolicy' | 'verify'>;
}

export interface RepoStatus {
  running: boolean;
  /** Objects still to copy or delete after the last pass (failures, refused deletes). */
  objectsBehind: number;
  bytesBehind: number;
  /** ISO time the last pass ended, or null. */
  lastPassAt: string | null;
  lastPassMs: number | null;
  lastDeepPassAt: string | null;
  lastError: string | null;
  lastErrorCode: string | null;
  passes: number;
  failedPasses: number;
  /** Summary of the last completed pass. */
  last: Pick<SyncResult, 'copied' | 'deleted' | 'failed' | 'corrupt' | 'bytes'> | null;
}

export class RepoReplicator {
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly cache: MetadataCache = new Map();
  private chain: Promise<unknown> = Promise.resolve();
  private loopDone: Promise<void> | null = null;
  private stopper: AbortController | null = null;
  private cronTask: ScheduledTask | null = null;
  private deepPending = false;
  private wasBehind = false;
  private readonly st: RepoStatus = {
    running: false, objectsBehind: 0, bytesBehind: 0, lastPassAt: null, lastPassMs: null, lastDeepPassAt: null,
    lastError: null, lastErrorCode: null, passes: 0, failedPasses: 0, last: null,
  };

  constructor(private readonly opts: RepoReplicatorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  status(): RepoStatus {
    return { ...this.st, last: this.st.last ? { ...this.st.last } : null };
  }

  /** Start the incremental loop and the deep-pass schedule. Idempotent. */
  start(): void {
    if (this.stopper) return;
    const stopper = new AbortController();
    this.stopper = stopper;
    this.st.running = true;
    const expr = this.opts.deepVerifyCron ?? '17 3 * * *';
    if (expr) this.cronTask = cron.schedule(expr, () => void (this.deepPending = true));
    this.loopDone = this.loop(stopper.signal);
  }

  /** Stop the loop, abort a pass in flight (it resumes where it left off next time) and wait for it. */
  async stop(): Promise<void> {
    this.cronTask?.stop();
    this.cronTask = null;
    const stopper = this.stopper;
    if (!stopper) return;
    stopper.abort();
    await this.loopDone;
    await this.chain.catch(() => undefined);
    this.stopper = null;
    this.loopDone = null;
    this.st.running = false;
  }

  /** Run one pass now (after any pass in flight). Rejects with the pass's error. */
  syncOnce(opts: { deep?: boolean } = {}): Promise<SyncResult> {
    const run = this.chain.catch(() => undefined).then(() => this.pass(opts.deep ?? false, this.stopper?.signal));
    this.chain = run;
    return run;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const deep = this.deepPending;
      this.deepPending = false;
      await this.syncOnce({ deep }).catch(() => undefined);
      if (signal.aborted) break;
      await this.clock.sleep(this.intervalMs, signal);
    }
  }

  private async pass(deep: boolean, signal?: AbortSignal): Promise<SyncResult> {
    const t0 = this.clock.monotonicMs();
    try {
      const r = await syncRepo(this.opts.source, this.opts.target, {
        ...this.opts.sync,
        deep,
        signal,
        metadataCache: this.cache,
        emit: this.opts.bus ? (e) => this.opts.bus!.emit(e) : undefined,
      });
      if (this.cache.size > 200_000) this.cache.clear();
      this.record(t0, deep, r, null);
      return r;
    } catch (err) {
      this.record(t0, deep, null, err);
      throw err;
    }
  }

  private record(t0: number, deep: boolean, r: SyncResult | null, err: unknown): void {
    this.st.passes++;
    this.st.lastPassMs = Math.round(this.clock.monotonicMs() - t0);
    this.st.lastPassAt = new Date(this.clock.nowMs()).toISOString();
    if (r && !r.aborted) {
      this.st.objectsBehind = Math.max(0, r.planned.copy + r.planned.delete - r.copied - r.deleted);
      this.st.bytesBehind = Math.max(0, r.planned.bytes - r.bytes);
      this.st.last = { copied: r.copied, deleted: r.deleted, failed: r.failed, corrupt: r.corrupt, bytes: r.bytes };
      if (deep) this.st.lastDeepPassAt = this.st.lastPassAt;
    }
    const message = err ? errorMessage(err) : r && r.failed > 0 ? `${r.failed} object(s) failed: ${r.errors[0]?.message ?? ''}` : null;
    const code = err instanceof HaError ? err.code : err ? 'REPO_FAILED' : r && r.failed > 0 ? (r.errors[0]?.code ?? 'REPO_FAILED') : null;
    if (message) this.st.failedPasses++;
    // The delete guard emits its own event from the engine; a failure repeating pass after pass stays quiet.
    if (message && message !== this.st.lastError && code !== 'REPO_DELETE_GUARD') {
      this.opts.bus?.emit({ type: 'repo_pass_failed', severity: 'warning', message: `image repository pass failed: ${message}`, details: { code, deep } });
    }
    if (err && code === 'REPO_DELETE_GUARD' && err instanceof HaError) {
      const planned = Number(err.details?.plannedDeletes ?? 0);
      this.st.objectsBehind = planned;
    }
    this.st.lastError = message;
    this.st.lastErrorCode = code;
    const behind = message !== null || this.st.objectsBehind > 0;
    const initialCatchUp = this.st.passes === 1 && r !== null && r.copied + r.deleted > 0;
    if (!behind && (this.wasBehind || initialCatchUp)) {
      this.opts.bus?.emit({ type: 'repo_caught_up', severity: 'info', message: 'image repository caught up with the primary', details: { passes: this.st.passes } });
    }
    this.wasBehind = behind;
  }
}
