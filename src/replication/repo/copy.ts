/**
 * One streamed object copy between stores, with verification; and the helpers the deep pass and the
 * quarantine policy use. Bodies are never buffered whole: bytes flow source → hash tap → target.put.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { ObjectInfo, ObjectStore } from '../../ports.js';
import { HaError } from '../../errors.js';
import { isMultipartEtag } from './diff.js';
import { canCopy, partSizeFor, SOURCE_ETAG_META, type ObjectBody } from './types.js';

/**
 * Counts and hashes bytes in flight; reports each chunk to `onBytes`. With `partSize` it also keeps the
 * MD5 of every `partSize` slice, from which the composite ETag of a multipart upload follows.
 */
class HashTap extends Transform {
  readonly hash = createHash('md5');
  bytes = 0;
  private readonly partDigests: Buffer[] = [];
  private partHash: Hash | null = null;
  private partFill = 0;
  constructor(
    private readonly onBytes: (n: number) => void,
    private readonly partSize: number | null = null,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.partSize) this.hashParts(chunk, this.partSize);
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
  private hashParts(chunk: Buffer, partSize: number): void {
    for (let at = 0; at < chunk.length; ) {
      this.partHash ??= createHash('md5');
      const take = Math.min(partSize - this.partFill, chunk.length - at);
      this.partHash.update(chunk.subarray(at, at + take));
      this.partFill += take;
      at += take;
      if (this.partFill === partSize) {
        this.partDigests.push(this.partHash.digest());
        this.partHash = null;
        this.partFill = 0;
      }
    }
  }
  /** S3's multipart ETag of the bytes seen: MD5 of the concatenated part MD5s, dash, part count. */
  compositeEtag(): string | null {
    if (!this.partSize) return null;
    const digests = this.partHash ? [...this.partDigests, this.partHash.copy().digest()] : this.partDigests;
    if (digests.length === 0) return null;
    return `${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}`;
  }
}

function abortError(): Error {
  return Object.assign(new Error('repository sync aborted'), { name: 'AbortError' });
}

/** Wires a body and its tap so that an abort or a source error fails the upload instead of hanging it. */
function tapBody(body: ObjectBody, onBytes: (n: number) => void, signal?: AbortSignal, partSize: number | null = null): { tap: HashTap; done: () => void } {
  const tap = new HashTap(onBytes, partSize);
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

/**
 * How a copy is checked. 'response' (default): the target's PUT answer carries the ETag the server
 * computed over the bytes it received: the MD5 of the content for a single PUT, and for a multipart
 * upload either that MD5 or the composite ETag (MD5 of the part MD5s, `-N`); it must equal the value
 * computed from the bytes sent, and those bytes must match the source's MD5 ETag. A PUT answer
 * without a usable ETag falls back to HEAD. 'head': always re-read the copy with HEAD as well.
 */
export type VerifyMode = 'head' | 'response';

export interface CopyOutcome {
  /** The source object as actually read (its GET may show a newer version than the listing). */
  source: ObjectInfo;
  target: ObjectInfo;
  bytes: number;
}

/**
 * Copy `key` from source to target, storing the source ETag in the target's metadata, then verify it
 * (see VerifyMode). A copy that fails verification is removed so no wrong object can pass for a
 * complete one.
 */
export async function copyObject(
  source: ObjectStore,
  target: ObjectStore,
  listed: ObjectInfo,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
  verify: VerifyMode = 'response',
): Promise<CopyOutcome> {
  if (signal?.aborted) throw abortError();
  const body = (await source.get(listed.key)) as ObjectBody;
  const info = body.info ?? listed;
  const metadata: Record<string, string> = { ...(info.metadata ?? {}), [SOURCE_ETAG_META]: info.etag };
  const { tap, done } = tapBody(body, onBytes, signal, partSizeFor(target, info.size));
  let put: ObjectInfo;
  try {
    put = await target.put(listed.key, tap, info.size, metadata);
  } finally {
    done();
  }
  if (signal?.aborted) throw abortError();
  const md5 = tap.hash.digest('hex');
  const sent = { md5, composite: tap.compositeEtag(), bytes: tap.bytes };
  let problem = sourceProblem(info, sent);
  let stored: ObjectInfo | null = null;
  if (!problem) {
    const answered = put.etag !== '' && (put.etag === md5 || put.etag === sent.composite);
    if (answered && verify === 'response') return { source: info, target: { ...put, metadata }, bytes: tap.bytes };
    if (put.etag !== '' && !answered && !isMultipartEtag(put.etag)) {
      problem = `target answered ETag ${put.etag} for content MD5 ${md5}`;
    } else {
      // A server may answer the PUT before the object is readable in full (s3rver writes in place and
      // answers before its file is flushed; S3 was once only eventually consistent): a mismatch is
      // confirmed by two more HEADs before it counts. Real damage stays and fails all three.
      for (const wait of [0, 100, 400]) {
        if (wait) await delay(wait);
        stored = await target.head(listed.key);
        problem = targetProblem(info, stored, sent);
        if (!problem) break;
      }
    }
  }
  if (problem) {
    await target.delete(listed.key).catch(() => undefined);
    throw new HaError('REPO_VERIFY_FAILED', `copy of ${listed.key} failed verification (${problem}); it was removed and will be copied again on the next pass`);
  }
  return { source: info, target: stored!, bytes: tap.bytes };
}

interface Sent {
  md5: string;
  composite: string | null;
  bytes: number;
}

/** Whether the bytes read are the source object the listing and GET described. */
function sourceProblem(source: ObjectInfo, sent: Sent): string | null {
  if (sent.bytes !== source.size) return `read ${sent.bytes} bytes, source says ${source.size}`;
  if (!isMultipartEtag(source.etag) && source.etag !== sent.md5) return `content MD5 ${sent.md5} differs from source ETag ${source.etag}`;
  return null;
}

/** Whether the target's HEAD shows the object that was sent. */
function targetProblem(source: ObjectInfo, head: ObjectInfo | null, sent: Sent): string | null {
  if (!head) return 'object missing after upload';
  if (head.size !== source.size) return `target size ${head.size}, source size ${source.size}`;
  if (!isMultipartEtag(head.etag) && head.etag !== sent.md5) return `target ETag ${head.etag} differs from content MD5 ${sent.md5}`;
  // Same part count, different composite ETag: some part arrived damaged.
  const parts = (etag: string) => etag.slice(etag.lastIndexOf('-'));
  if (isMultipartEtag(head.etag) && sent.composite && parts(head.etag) === parts(sent.composite) && head.etag !== sent.composite) {
    return `target ETag ${head.etag} differs from the composite ETag ${sent.composite} of the parts sent`;
  }
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
