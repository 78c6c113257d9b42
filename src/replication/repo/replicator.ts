/**
 * Near-real-time repository replication on the standby: an incremental pass every intervalMs, a deep
 * verification pass on a node-cron schedule, never two passes at once. status() feeds /status, /metrics
 * and the /standby health check.
 *
 * An incremental pass costs one listing per side, unless the source's change hint (hint.ts) shows that
 * nothing changed since just before the last clean full pass began: then the pass is skipped without a
 * request. A full listing pass still runs at least every fullPassMaxAgeMs, and a hint change wakes the
 * loop at once instead of waiting out the interval.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Clock } from '../../ports.js';
import { HaError, errorMessage } from '../../errors.js';
import { systemClock } from '../../clock.js';
import { gridDelayMs } from '../../util/cadence.js';
import { syncRepo, type MetadataCache, type SyncResult } from './engine.js';
import { DeleteWindow } from '../files/delete-guard.js';
import { sameHint, skipDecision, type HintBasis, type SkipDecision } from './hint.js';
import type { PassResult, RepoReplicatorOptions, RepoStatus } from './replicator-types.js';

export type { PassResult, RepoReplicatorOptions, RepoStatus } from './replicator-types.js';

/** A hint change starts the next pass at once, but no sooner than this after the previous one ended. */
const HINT_MIN_GAP_MS = 200;
/**
 * A pass that keeps failing (a full or unreachable repository) is retried after a growing pause: each
 * such pass may stream whole images from the primary only to fail again. Doubles from the interval up
 * to this; the first clean pass ends it.
 */
const FAILING_BACKOFF_MAX_MS = 15_000;

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
    lastError: null, lastErrorCode: null, passes: 0, failedPasses: 0, last: null, passesSkipped: 0, backoffMs: 0,
    hint: { source: null, basis: null, lastDecision: null, misses: 0, distrusted: null },
  };
  private readonly maxAgeMs: number;
  /** Monotonic start of the pass that set st.hint.basis. */
  private basisAt: number | null = null;
  private lastClean = false;
  /** The hint changed since the current pause (or pass) began: pause only briefly. */
  private hintDirty = false;
  private lastHintKey = '';
  private wake: (() => void) | null = null;
  private readonly deleteWindow: DeleteWindow;
  private lastGuardMessage: string | null = null;
  /**
   * A pass found work while the hint had not moved since the last clean pass. It becomes a miss (and
   * the watcher instance is distrusted) only if the hint still shows that generation once the grace
   * is over; a hint that moves meanwhile was merely late.
   */
  private suspect: { instance: string; generation: number; at: number; planned: SyncResult['planned'] } | null = null;

  constructor(private readonly opts: RepoReplicatorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.maxAgeMs = opts.fullPassMaxAgeMs ?? 30_000;
    this.deleteWindow = new DeleteWindow(opts.deleteWindowMs ?? 3_600_000);
  }

  status(): RepoStatus {
    const source = this.opts.changeHint?.() ?? null;
    return { ...this.st, last: this.st.last ? { ...this.st.last } : null, hint: { ...this.st.hint, source } };
  }

  /** The source's hint may have moved: a running loop starts its next pass soon instead of after the interval. */
  hintChanged(): void {
    const h = this.opts.changeHint?.() ?? null;
    const key = h ? `${h.instance}:${h.generation}:${h.ok}` : '';
    if (key === this.lastHintKey) return;
    this.lastHintKey = key;
    this.hintDirty = true;
    this.wake?.();
  }

  /** Start the incremental loop and the deep-pass schedule. Idempotent. */
  start(): void {
    if (this.stopper) return;
    const stopper = new AbortController();
    this.stopper = stopper;
    this.st.running = true;
    this.st.backoffMs = 0;
    this.forgetBasis();
    this.suspect = null;
    const expr = this.opts.deepVerifyCron ?? '17 3 * * *';
    if (expr) {
      this.cronTask = cron.schedule(expr, () => {
        this.deepPending = true;
        this.wake?.();
      });
    }
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
    // While stopped (this node may be primary) the target changes without any hint saying so.
    this.forgetBasis();
  }

  /**
   * Run one pass now (after any pass in flight). Rejects with the pass's error. With `allowSkip` the
   * pass may be skipped when the source's change hint shows nothing changed (as the loop does); without
   * it (switchover, operators) it always lists both sides.
   */
  syncOnce(opts: { deep?: boolean; allowSkip?: boolean } = {}): Promise<PassResult> {
    const run = this.chain.catch(() => undefined).then(() => this.pass(opts.deep ?? false, opts.allowSkip ?? false, this.stopper?.signal));
    this.chain = run;
    return run;
  }

  /** The skip decision for an incremental pass right now (exposed for tests and the bench). */
  decide(opts: { deep?: boolean; force?: boolean } = {}): SkipDecision {
    return skipDecision({
      now: this.clock.monotonicMs(),
      hint: this.opts.changeHint?.() ?? null,
      basis: this.st.hint.basis,
      basisPassStartedAt: this.basisAt,
      lastPassClean: this.lastClean,
      maxAgeMs: this.maxAgeMs,
      deep: opts.deep ?? false,
      force: opts.force ?? false,
      distrusted: this.st.hint.distrusted !== null && this.st.hint.distrusted === (this.opts.changeHint?.()?.instance ?? null),
    });
  }

  private forgetBasis(): void {
    this.st.hint.basis = null;
    this.basisAt = null;
    this.lastClean = false;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const deep = this.deepPending;
      this.deepPending = false;
      const r = await this.syncOnce({ deep, allowSkip: true }).catch(() => null);
      if (signal.aborted) break;
      const failing = r === null || r.failed > 0;
      this.st.backoffMs = failing ? Math.min(FAILING_BACKOFF_MAX_MS, this.st.backoffMs === 0 ? this.intervalMs : this.st.backoffMs * 2) : 0;
      if (failing && this.st.backoffMs > this.intervalMs) await this.backoff(signal, this.st.backoffMs);
      else await this.pause(signal, r?.skippedByHint === true);
    }
  }

  /**
   * How long an idle loop may sleep after a pass the hint let it skip: until the next pass could
   * decide otherwise without anyone calling hintChanged() or a deep pass falling due. That is when the
   * last full pass grows older than fullPassMaxAgeMs, or when the hint goes stale (the source went
   * quiet); both at least one interval away. Anything else that can change the decision (a new hint, a
   * deep pass, stop) wakes the loop early.
   */
  private idlePauseMs(): number {
    const now = this.clock.monotonicMs();
    if (this.basisAt === null || !this.opts.changeHintFreshUntil) return this.intervalMs;
    const fresh = this.opts.changeHintFreshUntil();
    if (fresh === null) return this.intervalMs;
    // A pending suspicion is settled at the first pass after its grace.
    const settle = this.suspect ? this.suspect.at + this.graceMs() : Infinity;
    const until = Math.min(this.basisAt + this.maxAgeMs, fresh + 1, settle);
    return Math.max(this.intervalMs, Math.ceil(until - now));
  }

  /**
   * `ms`, moved to a grid point of the interval (util/cadence.ts) so the pass shares a wake-up with the
   * heartbeat tick: the nearest one (within half an interval, never under half an interval), or the
   * first one not before `ms` (an idle pause must not end before what it waits for).
   */
  private onGrid(ms: number, which: 'nearest' | 'later'): number {
    const i = this.intervalMs;
    const delay = gridDelayMs(i, this.clock.nowMs() + ms - i, which === 'later' ? i : i / 2);
    return Math.max(i / 2, ms - i + delay);
  }

  /** Sleep `ms` after a failed pass; a deep pass due, a new hint or stop() end it early. */
  private async backoff(signal: AbortSignal, ms: number): Promise<void> {
    if (!this.hintDirty && !this.deepPending) await this.sleepWakeable(signal, this.onGrid(ms, 'nearest'));
  }

  /** Sleep `ms`; stop() or wake() (a new hint, a deep pass due) end it early. */
  private async sleepWakeable(signal: AbortSignal, ms: number): Promise<void> {
    const early = new AbortController();
    const onStop = () => early.abort();
    signal.addEventListener('abort', onStop, { once: true });
    this.wake = () => early.abort();
    try {
      await this.clock.sleep(ms, early.signal);
    } finally {
      this.wake = null;
      signal.removeEventListener('abort', onStop);
    }
  }

  /**
   * Sleep the interval (longer after a skipped pass, see idlePauseMs), or only HINT_MIN_GAP_MS when the
   * source's hint moves meanwhile (or moved during the pass).
   */
  private async pause(signal: AbortSignal, skipped: boolean): Promise<void> {
    const from = this.clock.monotonicMs();
    if (!this.hintDirty && !this.deepPending) {
      await this.sleepWakeable(signal, skipped ? this.onGrid(this.idlePauseMs(), 'later') : this.onGrid(this.intervalMs, 'nearest'));
    }
    if (signal.aborted || !this.hintDirty) return;
    const left = Math.min(this.intervalMs, HINT_MIN_GAP_MS) - (this.clock.monotonicMs() - from);
    if (left > 0) await this.clock.sleep(left, signal);
  }

  private graceMs(): number {
    return this.opts.changeHintGraceMs?.() ?? 3000;
  }

  /** Decide a pending suspicion (see `suspect`) once the hint has moved or the grace is over. */
  private settleSuspect(): void {
    const s = this.suspect;
    if (!s) return;
    const h = this.opts.changeHint?.() ?? null;
    if (h && (h.instance !== s.instance || h.generation !== s.generation)) {
      // The hint moved (late, not missed), or another watcher instance is not trusted blindly anyway.
      this.suspect = null;
      return;
    }
    // Without a usable hint now there is nothing to compare: wait for the next one.
    if (!h || !h.ok || this.clock.monotonicMs() - s.at < this.graceMs()) return;
    this.suspect = null;
    const work = s.planned.copy + s.planned.delete;
    this.st.hint.misses++;
    this.st.hint.distrusted = s.instance;
    this.opts.bus?.emit({
      type: 'repo_hint_missed',
      severity: 'warning',
      message: `the source's change hint did not move, yet a full pass found ${work} object(s) to copy or delete and the hint still had not moved ${this.graceMs()} ms later: passes list both sides again until the source watcher restarts (check repo.watchDir on the primary, the inotify limits, and writes to this node's own repository)`,
      details: { planned: s.planned, instance: s.instance, generation: s.generation },
    });
  }

  private async pass(deep: boolean, allowSkip: boolean, signal?: AbortSignal): Promise<PassResult> {
    this.hintDirty = false;
    this.settleSuspect();
    const decision = this.decide({ deep, force: !allowSkip });
    if (allowSkip && !deep) this.st.hint.lastDecision = decision.reason;
    if (decision.skip) {
      this.st.passesSkipped++;
      return skippedResult();
    }
    // Taken before listing: a change during this pass moves the source's generation past the basis, so
    // the next decision cannot skip it.
    const before = this.opts.changeHint?.() ?? null;
    const basis = before && before.ok ? { instance: before.instance, generation: before.generation } : null;
    // The hint had not moved since the last clean pass (only the age forced this one): any work found
    // now is a change the hint did not report.
    const unchanged = !deep && this.lastClean && basis !== null && sameHint(basis, this.st.hint.basis) && this.st.hint.distrusted !== basis.instance;
    const t0 = this.clock.monotonicMs();
    try {
      const r = await syncRepo(this.opts.source, this.opts.target, {
        ...this.opts.sync,
        deep,
        signal,
        metadataCache: this.cache,
        deleteWindow: { window: this.deleteWindow, maxDeletesPerWindow: this.opts.maxDeletesPerWindow ?? 1000, nowMs: () => this.clock.monotonicMs() },
        // The guard refusing pass after pass for the same reason is one situation, one event.
        emit: this.opts.bus
          ? (e) => {
              if (e.type === 'repo_delete_guard') {
                if (e.message === this.lastGuardMessage) return;
                this.lastGuardMessage = e.message;
              }
              this.opts.bus!.emit(e);
            }
          : undefined,
      });
      this.lastGuardMessage = null;
      if (this.cache.size > 200_000) this.cache.clear();
      this.record(t0, deep, r, null);
      this.afterPass(t0, r, basis, unchanged);
      if (!r.aborted) this.opts.onPass?.(r);
      return { ...r, skippedByHint: false };
    } catch (err) {
      this.record(t0, deep, null, err);
      this.forgetBasis();
      if (!signal?.aborted) this.opts.onPass?.(null);
      throw err;
    }
  }

  private afterPass(t0: number, r: SyncResult, basis: HintBasis | null, unchanged: boolean): void {
    if (r.aborted) {
      this.forgetBasis();
      return;
    }
    const work = r.planned.copy + r.planned.delete;
    if (unchanged && work > 0 && basis && !this.suspect) {
      this.suspect = { instance: basis.instance, generation: basis.generation, at: this.clock.monotonicMs(), planned: r.planned };
    }
    this.lastClean = this.st.objectsBehind === 0 && this.st.lastError === null;
    if (this.lastClean && basis) {
      this.st.hint.basis = basis;
      this.basisAt = t0;
    } else {
      this.st.hint.basis = null;
      this.basisAt = null;
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
    // The delete guard emits its own event from the engine. A failure repeating pass after pass stays
    // quiet, also when its details move (which object failed first, how many): one event when passes
    // start failing and one when the kind of failure (its code) changes.
    if (message && (this.st.lastError === null || code !== this.st.lastErrorCode) && code !== 'REPO_DELETE_GUARD') {
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

function skippedResult(): PassResult {
  return {
    sourceObjects: 0, targetObjects: 0, planned: { copy: 0, delete: 0, bytes: 0 }, copied: 0, deleted: 0, skipped: 0, failed: 0, corrupt: 0, aclsFixed: 0,
    quarantined: 0, deferred: 0, quarantinePrefix: null, bytes: 0, durationMs: 0, dryRun: false, aborted: false, errors: [], skippedByHint: true,
  };
}
