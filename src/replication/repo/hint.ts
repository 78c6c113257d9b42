/**
 * The change hint: the primary watches its repository's backing directory and counts file-system events
 * (a generation number); the standby skips a listing pass while that number has not moved since just
 * before its last clean full pass. This module holds the shared types and the pure skip decision.
 */

/** What the source node reports about its repository directory (travels in heartbeats). */
export interface RepoChangeHint {
  /** Random per sidecar process: a restarted watcher is never mistaken for an unchanged one. */
  instance: string;
  /** Grows on every file-system event under the watched directory, and on every watcher state change. */
  generation: number;
  /** False while the watcher starts, after an error (events may have been missed) or when stopped. */
  ok: boolean;
  /** Why the hint is not usable, when ok is false. */
  error: string | null;
}

/** The hint value observed just before a full listing pass started. */
export interface HintBasis {
  instance: string;
  generation: number;
}

export interface SkipInput {
  /** Monotonic ms. */
  now: number;
  /** The source's current hint (null: none configured, none received, or too old). */
  hint: RepoChangeHint | null;
  /** Hint observed before the last full pass that ended clean (null: no such pass). */
  basis: HintBasis | null;
  /** Monotonic start of that pass. */
  basisPassStartedAt: number | null;
  /** The last full pass left nothing behind and reported no error. */
  lastPassClean: boolean;
  /** A full listing pass runs at least this often; 0 disables skipping. */
  maxAgeMs: number;
  deep: boolean;
  /** A caller asked for a real pass (switchover, operator). */
  force: boolean;
  /** The hint of this source instance once failed to report a change (see RepoReplicator). */
  distrusted: boolean;
}

export interface SkipDecision {
  skip: boolean;
  reason: string;
}

export function sameHint(a: HintBasis | null, b: HintBasis | null): boolean {
  return !!a && !!b && a.instance === b.instance && a.generation === b.generation;
}

/** Whether an incremental pass may be skipped: only when every condition for "nothing changed" holds. */
export function skipDecision(i: SkipInput): SkipDecision {
  const full = (reason: string): SkipDecision => ({ skip: false, reason });
  if (i.force) return full('full pass requested');
  if (i.deep) return full('deep verification pass');
  if (!i.hint) return full('no change hint from the source');
  if (i.maxAgeMs <= 0) return full('skipping disabled (fullPassMaxAgeMs 0)');
  if (!i.hint.ok) return full(`source change hint not usable: ${i.hint.error ?? 'watcher not ready'}`);
  if (i.distrusted) return full('the source change hint missed a change before: listing every pass until its watcher restarts');
  if (!i.basis || i.basisPassStartedAt === null) return full('no clean full pass with a change hint yet');
  if (!i.lastPassClean) return full('the last pass left work behind or failed');
  if (i.hint.instance !== i.basis.instance) return full('the source watcher restarted');
  if (i.hint.generation !== i.basis.generation) return full(`source changed (generation ${i.basis.generation} -> ${i.hint.generation})`);
  const age = i.now - i.basisPassStartedAt;
  if (age >= i.maxAgeMs) return full(`last full pass is ${Math.round(age)} ms old (fullPassMaxAgeMs ${i.maxAgeMs})`);
  return { skip: true, reason: 'source unchanged since the last clean full pass' };
}

/** A hint from an untrusted channel (a heartbeat body), or null when it does not have the right shape. */
export function parseHint(v: unknown): RepoChangeHint | null {
  const h = v as Partial<RepoChangeHint> | null | undefined;
  if (!h || typeof h !== 'object') return null;
  if (typeof h.instance !== 'string' || !h.instance || typeof h.generation !== 'number' || !Number.isSafeInteger(h.generation) || typeof h.ok !== 'boolean') return null;
  return { instance: h.instance, generation: h.generation, ok: h.ok, error: typeof h.error === 'string' ? h.error : null };
}
