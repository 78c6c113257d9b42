/**
 * Types shared by the repository sync engine and the stores that feed it.
 */
import type { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../../ports.js';

/** A body stream; stores may attach the object's metadata as read from the GET response. */
export type ObjectBody = Readable & { info?: ObjectInfo };

/** A store that can copy an object to another key server-side (S3 PUT with x-amz-copy-source). */
export interface CopyCapableStore extends ObjectStore {
  /** With `metadata`, the copy carries that user metadata instead of the source's. */
  copy(fromKey: string, toKey: string, metadata?: Record<string, string>): Promise<ObjectInfo>;
}

export function canCopy(store: ObjectStore): store is CopyCapableStore {
  return typeof (store as Partial<CopyCapableStore>).copy === 'function';
}

/** A store that can tell how it will upload an object of a given size (for composite ETag checks). */
export interface PartLayoutStore extends ObjectStore {
  /** The part size a put of `size` bytes uploads with, or null when it is stored with one PUT. */
  uploadPartSize(size: number): number | null;
}

export function partSizeFor(store: ObjectStore, size: number): number | null {
  const f = (store as Partial<PartLayoutStore>).uploadPartSize;
  return typeof f === 'function' ? f.call(store, size) : null;
}

/** User-metadata key (x-amz-meta-nha-source-etag) holding the source ETag of a replicated object. */
export const SOURCE_ETAG_META = 'nha-source-etag';
/**
 * The value stored under SOURCE_ETAG_META for a source ETag. A store killed mid-write can list an object
 * with an empty ETag; it is recorded as `none` (an empty user-metadata value may not survive the trip).
 */
export function sourceEtagMeta(etag: string): string {
  return etag === '' ? 'none' : etag;
}
/** Prefix where the quarantine conflict policy keeps target objects before overwriting or deleting them. */
export const QUARANTINE_PREFIX = 'nha-quarantine/';
