/**
 * The pure comparison of two repository listings: what to copy, what to delete, what is already there.
 * Objects are compared by key + size + ETag; a multipart ETag (`md5-N`) is not an MD5 of the content, so
 * when either side has one the target's stored source ETag (metadata nha-source-etag) decides.
 */
import type { ObjectInfo } from '../../ports.js';
import { QUARANTINE_PREFIX, SOURCE_ETAG_META, sourceEtagMeta } from './types.js';

export type Verdict = 'same' | 'different' | 'unknown';

export interface CopyItem {
  key: string;
  reason: 'new' | 'changed' | 'corrupt';
  source: ObjectInfo;
  /** The target object this copy replaces, if any. */
  target?: ObjectInfo;
}

export interface RepoDiff {
  copy: CopyItem[];
  delete: ObjectInfo[];
  unchanged: Array<{ source: ObjectInfo; target: ObjectInfo }>;
  /** Target objects whose metadata (stored source ETag) is needed to decide; fetch with HEAD and diff again. */
  needMetadata: ObjectInfo[];
}

export function isMultipartEtag(etag: string): boolean {
  return /-\d+$/.test(etag);
}

/** Whether an ETag has the form of a content MD5 (32 hex digits), as single-PUT objects have on S3. */
export function isPlainMd5(etag: string): boolean {
  return /^[0-9a-f]{32}$/i.test(etag);
}

/** Whether a target object holds the same content as a source object, as far as listings can tell. */
export function compareObjects(source: ObjectInfo, target: ObjectInfo): Verdict {
  if (source.size !== target.size) return 'different';
  if (source.etag === target.etag) return 'same';
  // Two plain MD5 ETags that differ mean different bytes, whatever the metadata claims. Any other ETag
  // (multipart, or empty from a store killed mid-write) does not state the content: the source ETag the
  // target recorded when it was copied decides.
  if (isPlainMd5(source.etag) && isPlainMd5(target.etag)) return 'different';
  const stored = target.metadata?.[SOURCE_ETAG_META];
  if (target.metadata === undefined) return 'unknown';
  return stored === sourceEtagMeta(source.etag) ? 'same' : 'different';
}

/** Keys under the quarantine prefix belong to neither side of the comparison. */
export function isReplicated(key: string): boolean {
  return !key.startsWith(QUARANTINE_PREFIX);
}

export function diffListings(source: Iterable<ObjectInfo>, target: Iterable<ObjectInfo>): RepoDiff {
  const targetByKey = new Map<string, ObjectInfo>();
  for (const t of target) if (isReplicated(t.key)) targetByKey.set(t.key, t);
  const result: RepoDiff = { copy: [], delete: [], unchanged: [], needMetadata: [] };
  const seen = new Set<string>();
  for (const s of source) {
    if (!isReplicated(s.key) || seen.has(s.key)) continue;
    seen.add(s.key);
    const t = targetByKey.get(s.key);
    if (!t) {
      result.copy.push({ key: s.key, reason: 'new', source: s });
      continue;
    }
    const verdict = compareObjects(s, t);
    if (verdict === 'same') result.unchanged.push({ source: s, target: t });
    else if (verdict === 'different') result.copy.push({ key: s.key, reason: 'changed', source: s, target: t });
    else result.needMetadata.push(t);
  }
  for (const [key, t] of targetByKey) if (!seen.has(key)) result.delete.push(t);
  return result;
}

/** Sum of sizes, for progress totals and lag figures. */
export function totalBytes(items: Iterable<{ size: number } | { source: ObjectInfo }>): number {
  let n = 0;
  for (const i of items) n += 'source' in i ? i.source.size : i.size;
  return n;
}
