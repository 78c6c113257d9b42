/**
 * Objects the repository sync moved aside (nha-quarantine/<eventId>/<key>): what merging them back into
 * the bucket would do. A quarantined object whose key the bucket lacks is merged back; one whose key holds
 * the same content is redundant; one whose key holds other content stays (a conflict, listed for the
 * operator). Objects older than keepDays are expired (dropped by `repo quarantine drop`).
 *
 * With the primary's tombstones (its delete journal, src/replication/tombstones.ts): a quarantined object
 * whose key the bucket lacks because the primary deleted it after the object was written (the tombstone
 * is newer than the object's write time) is not merged back either; it stays in quarantine.
 */
import { deletedAfterWrite } from '../tombstones.js';

export const QUARANTINE_PREFIX = 'nha-quarantine/';
/**
 * User metadata (x-amz-meta-nha-written-at) of a quarantined copy: the Last-Modified (ms) of the object it
 * was moved aside from. The copy's own Last-Modified is the time it was moved aside.
 */
export const WRITTEN_AT_META = 'nha-written-at';

export interface QuarantinedObject {
  /** Full key, nha-quarantine/<eventId>/<original key>. */
  key: string;
  etag: string;
  mtimeMs: number;
  /** When the original object was written (WRITTEN_AT_META), when known; else mtimeMs stands for it. */
  writtenMs?: number;
}

/** The write time a quarantined copy records in its metadata, or undefined. */
export function writtenAtOf(metadata: Record<string, string> | undefined): number | undefined {
  const v = Number(metadata?.[WRITTEN_AT_META]);
  return metadata?.[WRITTEN_AT_META] !== undefined && Number.isFinite(v) && v > 0 ? v : undefined;
}

export interface QuarantinePlan {
  merge: Array<{ from: string; to: string }>;
  same: Array<{ from: string; to: string }>;
  conflicts: Array<{ from: string; to: string }>;
  /** The bucket lacks the key because it was deleted there after this copy was written: not merged. */
  deletedOnPrimary: Array<{ from: string; to: string; deletedAtMs: number; writtenMs: number }>;
  expired: string[];
}

/** The original key of a quarantined object, or null when the key is not under the quarantine prefix. */
export function originalKey(key: string): string | null {
  if (!key.startsWith(QUARANTINE_PREFIX)) return null;
  const rest = key.slice(QUARANTINE_PREFIX.length);
  const i = rest.indexOf('/');
  return i > 0 && i < rest.length - 1 ? rest.slice(i + 1) : null;
}

/**
 * `bucket`: original key → ETag of what the bucket holds now. The newest quarantined copy of a key wins.
 * `tombstones`: original key → time (ms) the bucket's node deleted it (its newest tombstone).
 */
export function planQuarantine(
  objects: QuarantinedObject[],
  bucket: Map<string, string>,
  opts: { keepDays: number; nowMs: number; tombstones?: ReadonlyMap<string, { atMs: number }> },
): QuarantinePlan {
  const plan: QuarantinePlan = { merge: [], same: [], conflicts: [], deletedOnPrimary: [], expired: [] };
  const newest = new Map<string, QuarantinedObject>();
  for (const o of objects) {
    // Keys without an original key (the rejoin marker) are not quarantined objects: never expired here.
    const to = originalKey(o.key);
    if (to === null) continue;
    if (opts.keepDays > 0 && opts.nowMs - o.mtimeMs > opts.keepDays * 86_400_000) plan.expired.push(o.key);
    const prev = newest.get(to);
    if (!prev || prev.mtimeMs < o.mtimeMs) newest.set(to, o);
  }
  for (const [to, o] of [...newest].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const now = bucket.get(to);
    if (now === undefined) {
      const t = opts.tombstones?.get(to);
      const writtenMs = o.writtenMs ?? o.mtimeMs;
      if (t && deletedAfterWrite(t, writtenMs)) plan.deletedOnPrimary.push({ from: o.key, to, deletedAtMs: t.atMs, writtenMs });
      else plan.merge.push({ from: o.key, to });
    }
    else if (now === o.etag) plan.same.push({ from: o.key, to });
    else plan.conflicts.push({ from: o.key, to });
  }
  return plan;
}
