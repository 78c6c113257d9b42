/**
 * One streamed object copy between stores, with verification; and the helpers the deep pass and the
 * quarantine policy use. Bodies are never buffered whole: bytes flow source → hash tap → target.put.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { CannedAcl, ObjectInfo, ObjectStore } from '../../ports.js';
import { errorMessage, HaError } from '../../errors.js';
import { isMultipartEtag, isPlainMd5 } from './diff.js';
import { canCopy, partSizeFor, SOURCE_ETAG_META, sourceEtagMeta, type ObjectBody } from './types.js';
import { WRITTEN_AT_META } from './quarantine.js';

/**
 * Counts bytes in flight and, unless told not to, hashes them; reports each chunk to `onBytes`. With
 * `partSize` it also keeps the MD5 of every `partSize` slice, from which the composite ETag of a
 * multipart upload follows.
 */
class HashTap extends Transform {
  readonly hash: Hash | null;
  bytes = 0;
  private readonly partDigests: Buffer[] = [];
  private partHash: Hash | null = null;
  private partFill = 0;
  constructor(
    private readonly onBytes: (n: number) => void,
    private readonly partSize: number | null = null,
    hash = true,
  ) {
    super();
    this.hash = hash ? createHash('md5') : null;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash?.update(chunk);
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
function tapBody(
  body: ObjectBody,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
  partSize: number | null = null,
  hash = true,
): { tap: HashTap; done: () => void } {
  const tap = new HashTap(onBytes, partSize, hash);
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
  return {
    tap,
    done: () => {
      signal?.removeEventListener('abort', onAbort);
      // A failed upload leaves the source's response paused and its connection held: release it.
      if (!body.readableEnded) body.destroy();
    },
  };
}

/**
 * How a copy is checked. 'response' (default): the target's PUT answer carries the ETag the server
 * computed over the bytes it received: the MD5 of the content for a single PUT, and for a multipart
 * upload either that MD5 or the composite ETag (MD5 of the part MD5s, `-N`); it must equal the MD5 the
 * content should have. For a single PUT of an object whose source ETag is a plain MD5, that is the
 * source ETag itself, sent along as Content-MD5 (S3 refuses a body that does not match it, so a damaged
 * transfer never replaces the target's object); the bytes are not hashed here. Otherwise the MD5 (and
 * composite ETag) of the bytes sent is computed in flight, and must also match the source's MD5 ETag. A
 * PUT answer without a usable ETag falls back to HEAD, and, when nothing was hashed in flight and the
 * HEAD shows no MD5 either, to reading the copy back. 'head': always re-read the copy with HEAD as well.
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
  /** Store the copy under this key of the target (default: the listed key). */
  toKey: string = listed.key,
): Promise<CopyOutcome> {
  if (signal?.aborted) throw abortError();
  // The object's ACL travels with it (a public image stays readable after a failover, a private one
  // never turns public): asked alongside the GET, so it adds no round trip.
  // The content matters more than its ACL: an ACL that cannot be read leaves the copy at the default.
  const aclAsked: Promise<CannedAcl | null> = target.putAcl && source.getAcl ? source.getAcl(listed.key).catch(() => null) : Promise.resolve(null);
  const body = (await source.get(listed.key)) as ObjectBody;
  const acl = await aclAsked;
  const info = body.info ?? listed;
  const metadata: Record<string, string> = { ...(info.metadata ?? {}), [SOURCE_ETAG_META]: sourceEtagMeta(info.etag) };
  const partSize = partSizeFor(target, info.size);
  // The MD5 the stored content must have, when the source already states it: no need to hash in flight.
  const sourceMd5 = partSize === null && isPlainMd5(info.etag) ? info.etag : null;
  const { tap, done } = tapBody(body, onBytes, signal, partSize, sourceMd5 === null);
  let put: ObjectInfo;
  try {
    put = await target.put(toKey, tap, info.size, metadata, { ...(sourceMd5 ? { contentMd5: sourceMd5 } : {}), ...(acl && acl !== 'private' ? { acl } : {}) });
  } finally {
    done();
  }
  if (signal?.aborted) throw abortError();
  const md5 = tap.hash?.digest('hex') ?? null;
  const sent: Sent = { md5, composite: tap.compositeEtag(), bytes: tap.bytes };
  // With a hash of the bytes sent, the source ETag was checked against it (sourceProblem).
  const expected = md5 ?? sourceMd5!;
  const of = md5 ? 'content MD5' : 'source MD5';
  let problem = sourceProblem(info, sent);
  let stored: ObjectInfo | null = null;
  if (!problem) {
    const answered = put.etag !== '' && (put.etag === expected || put.etag === sent.composite);
    if (answered && verify === 'response') return { source: info, target: { ...put, metadata }, bytes: tap.bytes };
    if (put.etag !== '' && !answered && !isMultipartEtag(put.etag)) {
      problem = `target answered ETag ${put.etag} for ${of} ${expected}`;
    } else {
      // A server may answer the PUT before the object is readable in full (s3rver writes in place and
      // answers before its file is flushed; S3 was once only eventually consistent): a mismatch is
      // confirmed by two more HEADs before it counts. Real damage stays and fails all three.
      for (const wait of [0, 100, 400]) {
        if (wait) await delay(wait);
        stored = await target.head(toKey);
        problem = targetProblem(info, stored, sent, expected);
        if (!problem && !md5 && isMultipartEtag(stored!.etag)) {
          // Neither the answer nor the HEAD states the stored content's MD5, and nothing was hashed in
          // flight: read the copy back.
          const got = await contentMd5(target, toKey, signal);
          if (got !== expected) problem = `target content MD5 ${got} differs from ${of} ${expected}`;
        }
        if (!problem) break;
      }
    }
  }
  if (problem) {
    await target.delete(toKey).catch(() => undefined);
    throw new HaError('REPO_VERIFY_FAILED', `copy of ${listed.key}${toKey === listed.key ? '' : ` to ${toKey}`} failed verification (${problem}); it was removed and will be copied again on the next pass`);
  }
  return { source: info, target: stored!, bytes: tap.bytes };
}

interface Sent {
  /** MD5 of the bytes sent, when they were hashed in flight. */
  md5: string | null;
  composite: string | null;
  bytes: number;
}

/** Whether the bytes read are the source object the listing and GET described. */
function sourceProblem(source: ObjectInfo, sent: Sent): string | null {
  if (sent.bytes !== source.size) return `read ${sent.bytes} bytes, source says ${source.size}`;
  // Only a plain MD5 ETag states the content; a multipart or empty one is checked by size alone here.
  if (sent.md5 && isPlainMd5(source.etag) && source.etag !== sent.md5) return `content MD5 ${sent.md5} differs from source ETag ${source.etag}`;
  return null;
}

/** Whether the target's HEAD shows the object that was sent. */
function targetProblem(source: ObjectInfo, head: ObjectInfo | null, sent: Sent, expected: string): string | null {
  if (!head) return 'object missing after upload';
  if (head.size !== source.size) return `target size ${head.size}, source size ${source.size}`;
  if (!isMultipartEtag(head.etag) && head.etag !== expected) return `target ETag ${head.etag} differs from ${sent.md5 ? 'content' : 'source'} MD5 ${expected}`;
  // Same part count, different composite ETag: some part arrived damaged.
  const parts = (etag: string) => etag.slice(etag.lastIndexOf('-'));
  if (isMultipartEtag(head.etag) && sent.composite && parts(head.etag) === parts(sent.composite) && head.etag !== sent.composite) {
    return `target ETag ${head.etag} differs from the composite ETag ${sent.composite} of the parts sent`;
  }
  if (head.etag !== source.etag && head.metadata?.[SOURCE_ETAG_META] !== sourceEtagMeta(source.etag)) return 'stored source ETag missing on target';
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
  return tap.hash!.digest('hex');
}

/**
 * Copy an object to another key of the same store: server-side when the store can, else streamed. A
 * server-side copy that fails falls back to the streamed one: a server may hold an object it can serve
 * but not copy (s3rver, killed between writing an object and its metadata, answers every copy of it
 * with InternalError), and a quarantine that could never succeed would keep that object from ever
 * being replaced. The streamed copy overwrites whatever the failed one left at `toKey`.
 */
export async function copyWithin(store: ObjectStore, fromKey: string, toKey: string, signal?: AbortSignal): Promise<void> {
  // The copy records when the original was written (its own Last-Modified is the time of the copy), so a
  // merge-back can tell a copy written before the primary deleted its key from one written after.
  const src = await store.head(fromKey);
  const metadata = src ? { ...(src.metadata ?? {}), [WRITTEN_AT_META]: src.metadata?.[WRITTEN_AT_META] ?? String(Math.round(src.mtimeMs)) } : undefined;
  if (canCopy(store)) {
    try {
      await store.copy(fromKey, toKey, metadata);
      return;
    } catch (err) {
      if (signal?.aborted) throw err;
      try {
        await streamWithin(store, fromKey, toKey, signal, metadata); // overwrites whatever the failed copy left
      } catch (again) {
        // Both failed: leave no partial copy behind (toKey is under this pass's own quarantine prefix).
        await store.delete(toKey).catch(() => undefined);
        throw new HaError('REPO_FAILED', `${errorMessage(err)}; streamed copy to ${toKey} failed too: ${errorMessage(again)}`);
      }
      return;
    }
  }
  await streamWithin(store, fromKey, toKey, signal, metadata);
}

async function streamWithin(store: ObjectStore, fromKey: string, toKey: string, signal?: AbortSignal, metadata?: Record<string, string>): Promise<void> {
  const body = (await store.get(fromKey)) as ObjectBody;
  const info = body.info ?? (await store.head(fromKey));
  if (!info) throw new HaError('REPO_FAILED', `cannot quarantine ${fromKey}: it vanished`);
  const { tap, done } = tapBody(body, () => undefined, signal);
  try {
    await store.put(toKey, tap, info.size, metadata ?? info.metadata);
  } finally {
    done();
  }
}
