/** The repository replicator's options and status (replicator.ts). */
import type { ObjectStore, Clock } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import type { SyncOptions, SyncResult } from './engine.js';
import type { HintBasis, RepoChangeHint } from './hint.js';

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
  sync?: Pick<SyncOptions, 'concurrency' | 'maxDeleteFraction' | 'allowEmptySource' | 'conflictPolicy' | 'verify' | 'beforeDelete' | 'afterCopy' | 'deferRecentMs'>;
  /** The delete guard's sliding window across passes. Default 1 h and 1,000 objects. */
  deleteWindowMs?: number;
  maxDeletesPerWindow?: number;
  /**
   * The source's current change hint, or null when there is none (or it is too old to trust). Without
   * this option every pass lists both sides. Call hintChanged() when it may have changed.
   */
  changeHint?: () => RepoChangeHint | null;
  /**
   * Monotonic time at which changeHint() will stop returning the current hint for lack of news (the
   * source went quiet), or null when unknown. Lets an idle loop sleep until then instead of asking
   * every interval; without it the loop wakes every interval.
   */
  changeHintFreshUntil?: () => number | null;
  /** A full listing pass runs at least this often even when the hint says nothing changed. Default 30 000; 0: never skip. */
  fullPassMaxAgeMs?: number;
  /**
   * How long after a pass that found unreported work the hint may still catch up before that counts
   * as a miss (ms; default 3000). The hint travels in heartbeats, so a write the source's watcher saw a
   * moment before the pass listed it reaches this node up to a heartbeat later: late, not missed.
   */
  changeHintGraceMs?: () => number;
  /**
   * Called after every listing pass that ran (not skipped, not aborted): with its result, or null when it
   * threw (a refused delete guard, an unreachable repository). status() is current.
   */
  onPass?: (r: SyncResult | null) => void;
}

/** What a pass returned: the engine's result, or an empty one when the hint let the pass be skipped. */
export type PassResult = SyncResult & { skippedByHint: boolean };

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
  /** Incremental passes skipped because the source's change hint had not moved (no listing). */
  passesSkipped: number;
  /** Pause before the next pass while passes keep failing (ms; 0 while they succeed). */
  backoffMs: number;
  hint: {
    /** The source's hint as last seen (null: no hint configured or received recently). */
    source: RepoChangeHint | null;
    /** Hint observed before the last clean full pass; a pass is skipped while the source still shows it. */
    basis: HintBasis | null;
    /** Why the last incremental pass ran or was skipped. */
    lastDecision: string | null;
    /** Full passes that found work although the hint had not moved (the hint is then distrusted). */
    misses: number;
    /** Source watcher instance whose hint is no longer trusted, or null. */
    distrusted: string | null;
  };
}
