/**
 * One streamed object copy between stores, with verification; and the helpers the deep pass and the
 * quarantine policy use. Bodies are never buffered whole: bytes flow source → hash tap → target.put.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../../ports.js';
import { HaError } from '../../errors.js';
import { isMultipartEtag } from './diff.js';
import { canCopy, SOURCE_ETAG_META, type ObjectBody } from './types.js';

/** Counts and hashes bytes in flight; reports each chunk to `onBytes`. */
class HashTap extends Transform {
  readonly hash = createHash('md5');
  bytes = 0;
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

function abortError(): Error {
  return Object.assign(new Error('repository sync aborted'), { name: 'AbortError' });
}

/** Wires a body and its tap so that an abort or a source error fails the upload instead of hanging it. */
function tapBody(body: ObjectBody, onBytes: (n: number) => void, signal?: AbortSignal): { tap: HashTap; done: () => void } {
  const tap = new HashTap(onBytes);
  const onAbort = () => {
    const e = abortError();
    body.destroy(e);
    tap.destroy(e);
  };
  body.once('error', (e) => tap.destroy(e));
  // The consumer (a store's put) sees the failure through its own promise; this keeps an error emitted
  // after the consumer detached from crashing the process.
  tap.on('error', () => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  body.pipe(tap);
  return { tap, done: () => signal?.removeEventListener('abort', onAbort) };
}

/** How a copy is checked: 'head' re-reads size, ETag and stored ETag with HEAD; 'response' trusts a
 * single-part PUT's ETag when it equals the MD5 computed in flight (multipart copies still use HEAD). */
export type VerifyMode = 'head' | 'response';

export interface CopyOutcome {
  /** The source object as actually read (its GET may show a newer version than the listing). */
  source: ObjectInfo;
  target: ObjectInfo;
  bytes: number;
}

/**
 * Copy `key` from source to target, storing the source ETag in the target's metadata, then verify with
 * HEAD. A copy that fails verification is removed so no wrong object can pass for a complete one.
 */
export async function copyObject(
  source: ObjectStore,
  target: ObjectStore,
  listed: ObjectInfo,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
  verify: VerifyMode = 'head',
): Promise<CopyOutcome> {
  if (signal?.aborted) throw abortError();
  const body = (await source.get(listed.key)) as ObjectBody;
  const info = body.info ?? listed;
  const metadata: Record<string, string> = { ...(info.metadata ?? {}), [SOURCE_ETAG_META]: info.etag };
  const { tap, done } = tapBody(body, onBytes, signal);
  let put: ObjectInfo;
  try {
    put = await target.put(listed.key, tap, info.size, metadata);
  } finally {
    done();
  }
  if (signal?.aborted) throw abortError();
  const md5 = tap.hash.digest('hex');
  // 'response': a single-part PUT answers with the server's MD5 of what it stored; when that equals the
  // MD5 of the bytes sent (and the source's), a HEAD would only repeat the proof.
  if (verify === 'response' && !isMultipartEtag(put.etag) && put.etag === md5 && tap.bytes === info.size && (isMultipartEtag(info.etag) || info.etag === md5)) {
    return { source: info, target: { ...put, metadata }, bytes: tap.bytes };
  }
  const head = await target.head(listed.key);
  const problem = verifyProblem(info, head, md5, tap.bytes);
  if (problem) {
    await target.delete(listed.key).catch(() => undefined);
    throw new HaError('REPO_VERIFY_FAILED', `copy of ${listed.key} failed verification (${problem}); it was removed and will be copied again on the next pass`);
  }
  return { source: info, target: head!, bytes: tap.bytes };
}

function verifyProblem(source: ObjectInfo, head: ObjectInfo | null, md5: string, bytes: number): string | null {
  if (!head) return 'object missing after upload';
  if (bytes !== source.size) return `read ${bytes} bytes, source says ${source.size}`;
  if (head.size !== source.size) return `target size ${head.size}, source size ${source.size}`;
  if (!isMultipartEtag(source.etag) && source.etag !== md5) return `content MD5 ${md5} differs from source ETag ${source.etag}`;
  if (!isMultipartEtag(head.etag) && head.etag !== md5) return `target ETag ${head.etag} differs from content MD5 ${md5}`;
  if (head.etag !== source.etag && head.metadata?.[SOURCE_ETAG_META] !== source.etag) return 'stored source ETag missing on target';
  return null;
}

/** MD5 of an object's content, streamed. */
export async function contentMd5(store: ObjectStore, key: string, signal?: AbortSignal): Promise<string> {
  const body = await store.get(key);
  const { tap, done } = tapBody(body, () => undefined, signal);
  try {
    tap.resume();
    await new Promise<void>((resolve, reject) => {
      tap.once('end', resolve);
      tap.once('error', reject);
      tap.once('close', () => (tap.readableEnded ? resolve() : reject(abortError())));
    });
  } finally {
    done();
  }
  return tap.hash.digest('hex');
}

/** Copy an object to another key of the same store: server-side when the store can, else streamed. */
export async function copyWithin(store: ObjectStore, fromKey: string, toKey: string, signal?: AbortSignal): Promise<void> {
  if (canCopy(store)) {
    await store.copy(fromKey, toKey);
    return;
  }
  const body = (await store.get(fromKey)) as ObjectBody;
  const info = body.info ?? (await store.head(fromKey));
  if (!info) throw new HaError('REPO_FAILED', `cannot quarantine ${fromKey}: it vanished`);
  const { tap, done } = tapBody(body, () => undefined, signal);
  try {
    await store.put(toKey, tap, info.size, info.metadata);
  } finally {
    done();
  }
}
