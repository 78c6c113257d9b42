/**
 * One sync pass from a source repository to a target repository: list both sides completely, diff,
 * copy with bounded concurrency (streamed, verified), then delete what the source no longer has —
 * within the delete guard. Re-running an interrupted pass copies only what is still missing.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ObjectInfo, ObjectStore } from '../../ports.js';
import { HaError, errorMessage } from '../../errors.js';
import type { EventInput } from '../../events/bus.js';
import { diffListings, isPlainMd5, totalBytes, type CopyItem, type RepoDiff } from './diff.js';
import { contentMd5, copyObject, copyWithin, type VerifyMode } from './copy.js';
import { runPool } from './pool.js';
import { QUARANTINE_PREFIX, SOURCE_ETAG_META } from './types.js';
import { checkDeletes, type DeleteWindow } from '../files/delete-guard.js';

export type ConflictPolicy = 'source-wins' | 'quarantine';

export interface SyncProgress {
  phase: 'list' | 'verify' | 'copy' | 'delete' | 'done';
  objectsDone: number;
  objectsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Copy rate over the pass so far, bytes per second. */
  bytesPerSec: number;
}

/** Target metadata fetched by HEAD, keyed by key+etag+size so it stays valid across passes. */
export type MetadataCache = Map<string, Record<string, string>>;

export interface SyncOptions {
  /** Copies in flight at once. Default 8. */
  concurrency?: number;
  /** Largest share of the target's objects one pass may delete; above it the pass refuses. Default 0.1. */
  maxDeleteFraction?: number;
  /** Allow deleting everything when the source lists no objects at all. Default false. */
  allowEmptySource?: boolean;
  /** Plan and report only. */
  dryRun?: boolean;
  /** Also read objects that look unchanged and compare content MD5s; repair those that differ. */
  deep?: boolean;
  /** `quarantine`: keep target objects that would be overwritten or deleted under nha-quarantine/<eventId>/. */
  conflictPolicy?: ConflictPolicy;
  /** Names the quarantine folder; generated when absent. */
  eventId?: string;
  /** Post-copy check: 'response' (default: the PUT answer's ETag against the bytes sent) or 'head' (also HEAD each copy). */
  verify?: VerifyMode;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  /** Receives repo_* events (wire to EventBus.emit). */
  emit?: (e: EventInput) => void;
  metadataCache?: MetadataCache;
  /**
   * Deletes of earlier passes (kept by the replicator across passes): all deletes within the window
   * together stay within maxDeleteFraction of the target and at most maxDeletesPerWindow, so a trickle
   * of deletes cannot empty the target pass by pass.
   */
  deleteWindow?: { window: DeleteWindow; maxDeletesPerWindow: number; nowMs: () => number };
  /** Called (and awaited) before each target object is deleted: the delete journal records it first. */
  beforeDelete?: (key: string) => Promise<void>;
  /** Called after an object was copied to the target (its tombstone, if any, goes). */
  afterCopy?: (key: string) => void;
  /**
   * Live replication next to a write-through front: a target object modified within this many ms
   * before the listings began is neither deleted nor overwritten by this pass unless this puller wrote
   * it (it may be a write that reached both sides between the two listings, or while the source still
   * held the older version); every delete first checks (HEAD) that the target still holds the listed
   * object and the source still lacks it. The next pass decides. Default 0: a one-shot mirror, or a
   * puller with no front, does what the listings say.
   */
  deferRecentMs?: number;
}

export interface SyncResult {
  sourceObjects: number;
  targetObjects: number;
  /** What the diff asked for. */
  planned: { copy: number; delete: number; bytes: number };
  copied: number;
  deleted: number;
  skipped: number;
  failed: number;
  /** Objects found different by the deep pass (and recopied). */
  corrupt: number;
  /** Objects whose ACL the deep pass found different from the source's, and set (not in a dry run). */
  aclsFixed: number;
  quarantined: number;
  /** Copies and deletes in `planned` left to a later pass: the target object is recent, or the source has it again. */
  deferred: number;
  quarantinePrefix: string | null;
  bytes: number;
  durationMs: number;
  dryRun: boolean;
  aborted: boolean;
  errors: Array<{ key: string; message: string; code?: string }>;
}

async function listAll(store: ObjectStore, signal?: AbortSignal): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of store.list()) {
    if (signal?.aborted) break;
    out.push(o);
  }
  return out;
}

const cacheKey = (o: ObjectInfo) => `${o.key}\u0000${o.etag}\u0000${o.size}`;

/** Fill in target metadata where the diff needs the stored source ETag, then diff again. */
async function resolveMetadata(
  source: ObjectInfo[],
  target: ObjectInfo[],
  store: ObjectStore,
  cache: MetadataCache,
  concurrency: number,
): Promise<RepoDiff> {
  let diff = diffListings(source, target);
  if (diff.needMetadata.length === 0) return diff;
  const byKey = new Map(target.map((t, i) => [t.key, i]));
  await runPool(diff.needMetadata, concurrency, async (t) => {
    let meta = cache.get(cacheKey(t));
    if (!meta) {
      const head = await store.head(t.key);
      meta = head?.metadata ?? {};
      cache.set(cacheKey(t), meta);
    }
    const i = byKey.get(t.key);
    if (i !== undefined) target[i] = { ...t, metadata: meta };
  });
  diff = diffListings(source, target);
  return diff;
}

export function newEventId(nowMs = Date.now()): string {
  return `${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
}

export async function syncRepo(source: ObjectStore, target: ObjectStore, opts: SyncOptions = {}): Promise<SyncResult> {
  const t0 = performance.now();
  const concurrency = opts.concurrency ?? 8;
  const maxDeleteFraction = opts.maxDeleteFraction ?? 0.1;
  const signal = opts.signal;
  const quarantine = opts.conflictPolicy === 'quarantine';
  const quarantinePrefix = quarantine ? `${QUARANTINE_PREFIX}${opts.eventId ?? newEventId()}/` : null;
  const result: SyncResult = {
    sourceObjects: 0, targetObjects: 0, planned: { copy: 0, delete: 0, bytes: 0 },
    copied: 0, deleted: 0, skipped: 0, failed: 0, corrupt: 0, aclsFixed: 0, quarantined: 0, deferred: 0, quarantinePrefix,
    bytes: 0, durationMs: 0, dryRun: opts.dryRun ?? false, aborted: false, errors: [],
  };
  const progress: SyncProgress = { phase: 'list', objectsDone: 0, objectsTotal: 0, bytesDone: 0, bytesTotal: 0, bytesPerSec: 0 };
  let lastReport = 0;
  const report = (force = false) => {
    const now = performance.now();
    if (!opts.onProgress || (!force && now - lastReport < 200)) return;
    lastReport = now;
    progress.bytesPerSec = progress.bytesDone / Math.max(0.001, (now - t0) / 1000);
    opts.onProgress({ ...progress });
  };
  const finish = () => {
    result.durationMs = Math.round(performance.now() - t0);
    progress.phase = 'done';
    report(true);
    return result;
  };
  const aborted = () => {
    result.aborted = true;
    return finish();
  };
  const fail = (key: string, err: unknown) => {
    result.failed++;
    result.errors.push({ key, message: errorMessage(err), ...(err instanceof HaError ? { code: err.code } : {}) });
  };

  report(true);
  const listedFromMs = Date.now();
  // Both listings complete before anything changes: a partial source listing must never drive deletes.
  const [src, tgt] = await Promise.all([listAll(source, signal), listAll(target, signal)]);
  if (signal?.aborted) return aborted();
  result.sourceObjects = src.length;
  result.targetObjects = tgt.filter((t) => !t.key.startsWith(QUARANTINE_PREFIX)).length;
  const diff = await resolveMetadata(src, tgt, target, opts.metadataCache ?? new Map(), concurrency);

  if (opts.deep && diff.unchanged.length) {
    progress.phase = 'verify';
    await runPool(diff.unchanged, Math.min(concurrency, 4), async ({ source: s, target: t }) => {
      try {
        const got = await contentMd5(target, t.key, signal);
        const want = isPlainMd5(s.etag) ? s.etag : await contentMd5(source, s.key, signal);
        if (got !== want) {
          result.corrupt++;
          diff.copy.push({ key: s.key, reason: 'corrupt', source: s, target: t });
        } else if (source.getAcl && target.getAcl && target.putAcl) {
          // An ACL changed on the source without a new upload (PUT ?acl) changes no listing: the deep
          // pass compares them.
          const [sa, ta] = await Promise.all([source.getAcl(s.key), target.getAcl(t.key)]);
          if (sa !== null && ta !== null && sa !== ta) {
            if (!opts.dryRun) await target.putAcl(t.key, sa);
            result.aclsFixed++;
          }
        }
      } catch (err) {
        if (!signal?.aborted) fail(s.key, err);
      }
    }, signal);
    if (signal?.aborted) return aborted();
  }

  result.planned = { copy: diff.copy.length, delete: diff.delete.length, bytes: totalBytes(diff.copy) };
  result.skipped = diff.unchanged.length - result.corrupt;
  const graceMs = opts.deferRecentMs ?? 0;
  if (graceMs > 0) {
    const cutoff = listedFromMs - graceMs;
    const deletes = splitRecent(diff.delete, (t) => t.mtimeMs, cutoff);
    const copies = splitRecent(diff.copy, (c) => c.target?.mtimeMs, cutoff);
    // A recent target object this puller wrote itself carries the source ETag it copied: not a write
    // from elsewhere, so it is replaced now (a source changed since the last copy must not wait).
    const own: CopyItem[] = [];
    let waiting = 0;
    await runPool(copies.later, concurrency, async (c) => {
      const h = await target.head(c.key).catch(() => null);
      if (h?.metadata?.[SOURCE_ETAG_META] !== undefined) own.push(c);
      else waiting++;
    }, signal);
    if (signal?.aborted) return aborted();
    diff.delete = deletes.now;
    diff.copy = [...copies.now, ...own];
    result.deferred = deletes.later.length + waiting;
  }
  const dw = opts.deleteWindow;
  let guard = deleteGuard(src.length, result.targetObjects, diff.delete.length, maxDeleteFraction, opts.allowEmptySource ?? false);
  if (!guard && dw && src.length > 0) {
    const v = checkDeletes(
      { sourceEmpty: false, copyCount: result.targetObjects, deletes: diff.delete.length, recentDeletes: dw.window.recent(dw.nowMs()) },
      { maxDeleteFraction, minDeletes: 0, maxDeletesPerWindow: dw.maxDeletesPerWindow, allowEmptySource: false },
      'object',
    );
    if (!v.ok) guard = v.message;
  }
  if (opts.dryRun) {
    if (guard) result.errors.push({ key: '', message: guard, code: 'REPO_DELETE_GUARD' });
    return finish();
  }
  if (guard && src.length === 0) throw guardError(guard, diff, result, opts, t0);

  progress.phase = 'copy';
  progress.objectsTotal = diff.copy.length;
  progress.bytesTotal = result.planned.bytes;
  await runPool(diff.copy, concurrency, async (item: CopyItem) => {
    try {
      if (quarantinePrefix && item.target) {
        await copyWithin(target, item.key, quarantinePrefix + item.key, signal);
        result.quarantined++;
      }
      const out = await copyObject(source, target, item.source, (n) => {
        progress.bytesDone += n;
        report();
      }, signal, opts.verify);
      opts.afterCopy?.(item.key);
      result.copied++;
      result.bytes += out.bytes;
    } catch (err) {
      if (!signal?.aborted) fail(item.key, err);
    }
    progress.objectsDone++;
    report(true);
  }, signal);
  if (signal?.aborted) return aborted();

  if (guard) throw guardError(guard, diff, result, opts, t0);
  progress.phase = 'delete';
  await runPool(diff.delete, concurrency, async (t) => {
    try {
      if (graceMs > 0 && !(await stillToDelete(source, target, t))) {
        // Written again since the listings (a write reaching both sides mid-pass): keep it.
        result.deferred++;
        return;
      }
      if (quarantinePrefix) {
        await copyWithin(target, t.key, quarantinePrefix + t.key, signal);
        result.quarantined++;
      }
      await opts.beforeDelete?.(t.key);
      await target.delete(t.key);
      result.deleted++;
      dw?.window.add(dw.nowMs(), 1);
    } catch (err) {
      if (!signal?.aborted) fail(t.key, err);
    }
  }, signal);
  return signal?.aborted ? aborted() : finish();
}

/**
 * Live replication, right before a delete: the target object is still the one listed (same ETag and
 * size, same second) and the source still lacks the key. Narrows the window in which a write through
 * the front lands between the listings and the delete to the two requests.
 */
async function stillToDelete(source: ObjectStore, target: ObjectStore, listed: ObjectInfo): Promise<boolean> {
  const cur = await target.head(listed.key);
  if (!cur) return false;
  const sec = (ms: number) => Math.floor(ms / 1000);
  if (cur.etag !== listed.etag || cur.size !== listed.size || sec(cur.mtimeMs) !== sec(listed.mtimeMs)) return false;
  return (await source.head(listed.key)) === null;
}

/**
 * Changes the listings ask for, split by the modification time of the target object they would delete
 * or overwrite: those before `cutoffMs` (or with no target object) go now, the others (possibly written
 * to both sides while the two listings ran) wait for the next pass.
 */
export function splitRecent<T>(items: T[], targetMtime: (t: T) => number | undefined, cutoffMs: number): { now: T[]; later: T[] } {
  const now: T[] = [];
  const later: T[] = [];
  for (const t of items) {
    const m = targetMtime(t);
    (m !== undefined && m >= cutoffMs ? later : now).push(t);
  }
  return { now, later };
}

/** Why deleting `deletes` objects is refused, or null when it is allowed. */
export function deleteGuard(sourceCount: number, targetCount: number, deletes: number, maxFraction: number, allowEmptySource: boolean): string | null {
  if (deletes === 0) return null;
  if (sourceCount === 0 && !allowEmptySource) {
    return `the source lists no objects but the target has ${targetCount}: refusing to empty the target (check the source bucket and credentials; pass allowEmptySource to really mirror an empty source)`;
  }
  if (sourceCount === 0) return null;
  const allowed = Math.floor(targetCount * maxFraction);
  if (deletes > allowed) {
    return `the pass would delete ${deletes} of ${targetCount} target objects, more than maxDeleteFraction ${maxFraction} allows (${allowed}): check that the source is the right bucket, then raise maxDeleteFraction for one pass if the deletions are intended`;
  }
  return null;
}

function guardError(message: string, diff: RepoDiff, result: SyncResult, opts: SyncOptions, t0: number): HaError {
  result.durationMs = Math.round(performance.now() - t0);
  const details = { plannedDeletes: diff.delete.length, targetObjects: result.targetObjects, sourceObjects: result.sourceObjects, copied: result.copied };
  opts.emit?.({ type: 'repo_delete_guard', severity: 'critical', message: `repository sync refused to delete: ${message}`, details });
  return new HaError('REPO_DELETE_GUARD', message, { ...details, result });
}
