/**
 * Post-copy verification against in-memory stores whose PUT answers can be made to lie: single-PUT MD5
 * ETags, multipart composite ETags, answers without an ETag, and damage in flight.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { copyObject } from '../../src/replication/repo/copy.js';
import { syncRepo } from '../../src/replication/repo/engine.js';
import type { ObjectInfo, ObjectStore, PutOptions } from '../../src/ports.js';
import type { ObjectBody } from '../../src/replication/repo/types.js';
import { HaError } from '../../src/errors.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** S3's multipart ETag: MD5 of the concatenated binary part MD5s, dash, part count. */
function composite(b: Buffer, partSize: number): string {
  const digests: Buffer[] = [];
  for (let i = 0; i < b.length; i += partSize) digests.push(createHash('md5').update(b.subarray(i, i + partSize)).digest());
  return `${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}`;
}

interface MemOptions {
  /** Multipart above this size with this part size (composite ETags). */
  partSize?: number;
  /** What the PUT answer says: the server's real ETag (default), nothing, or a fixed value. */
  answer?: 'real' | 'none' | 'whole-md5';
  /** Damage the bytes on the way in (the server stores and hashes what it received). */
  damage?: (key: string, b: Buffer) => Buffer;
  /** Check Content-MD5 as S3 does: refuse a body that does not match it and keep the stored object. */
  checkMd5?: boolean;
  /** ETags that are not an MD5 of the content (as some servers give), in answers and HEADs alike. */
  opaqueEtags?: boolean;
}

class MemStore implements ObjectStore {
  readonly objects = new Map<string, { data: Buffer; info: ObjectInfo }>();
  heads = 0;
  gets = 0;
  /** The Content-MD5 of each PUT, by key (null: none sent). */
  readonly contentMd5 = new Map<string, string | null>();
  constructor(private readonly o: MemOptions = {}) {}
  describe(): string {
    return 'mem';
  }
  uploadPartSize(size: number): number | null {
    return this.o.partSize && size > this.o.partSize ? this.o.partSize : null;
  }
  async *list(): AsyncIterable<ObjectInfo> {
    for (const { info } of [...this.objects.values()].sort((a, b) => (a.info.key < b.info.key ? -1 : 1))) yield { ...info, metadata: undefined };
  }
  async head(key: string): Promise<ObjectInfo | null> {
    this.heads++;
    const o = this.objects.get(key);
    return o ? { ...o.info } : null;
  }
  async get(key: string): Promise<Readable> {
    this.gets++;
    const o = this.objects.get(key);
    if (!o) throw new Error(`no ${key}`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < o.data.length; i += 100_000) chunks.push(o.data.subarray(i, i + 100_000));
    const body = Readable.from(chunks) as ObjectBody;
    body.info = { ...o.info };
    return body;
  }
  async put(key: string, body: Readable, size: number, metadata?: Record<string, string>, opts?: PutOptions): Promise<ObjectInfo> {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c as Buffer);
    let data: Buffer = Buffer.concat(parts);
    if (this.o.damage) data = this.o.damage(key, data);
    this.contentMd5.set(key, opts?.contentMd5 ?? null);
    if (this.o.checkMd5 && opts?.contentMd5 && opts.contentMd5 !== md5(data)) {
      throw new HaError('REPO_VERIFY_FAILED', `BadDigest for ${key}`);
    }
    const ps = this.uploadPartSize(size);
    const etag = this.o.opaqueEtags ? `${md5(data).slice(0, 8)}-1` : ps ? composite(data, ps) : md5(data);
    const info = { key, size: data.length, etag, mtimeMs: Date.now(), metadata: { ...(metadata ?? {}) } };
    this.objects.set(key, { data, info });
    const answer = this.o.answer ?? 'real';
    return { ...info, etag: answer === 'none' ? '' : answer === 'whole-md5' ? md5(data) : etag };
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

async function fill(store: MemStore, sizes: number[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [i, n] of sizes.entries()) {
    const b = randomBytes(n);
    await store.put(`k/${i}`, Readable.from([b]), n);
    out.set(`k/${i}`, b);
  }
  return out;
}

const flip = (b: Buffer) => {
  const c = Buffer.from(b);
  c[Math.floor(c.length / 2)] ^= 0xff;
  return c;
};

describe('copy verification', () => {
  it('single PUT: the answer ETag proves the copy, no HEAD', async () => {
    const a = new MemStore();
    const b = new MemStore();
    const data = await fill(a, [10, 5000, 300_000]);
    const r = await syncRepo(a, b);
    expect(r).toMatchObject({ copied: 3, failed: 0 });
    expect(b.heads).toBe(0);
    for (const [k, v] of data) expect(b.objects.get(k)?.data.equals(v)).toBe(true);
  });

  it('multipart: the composite ETag of the parts sent must match the answer', async () => {
    const a = new MemStore();
    const b = new MemStore({ partSize: 64 * 1024 });
    await fill(a, [64 * 1024 * 3, 64 * 1024 * 3 + 17, 1000]);
    const r = await syncRepo(a, b);
    expect(r).toMatchObject({ copied: 3, failed: 0 });
    expect(b.heads).toBe(0);
    expect(b.objects.get('k/1')?.info.etag).toMatch(/-4$/);
    // Servers that answer a multipart upload with the MD5 of the whole object (s3rver) verify too.
    const c = new MemStore({ partSize: 64 * 1024, answer: 'whole-md5' });
    expect(await syncRepo(a, c)).toMatchObject({ copied: 3, failed: 0 });
    expect(c.heads).toBe(0);
  });

  it.each([
    { mode: 'single PUT', opts: {} },
    { mode: 'multipart', opts: { partSize: 64 * 1024 } },
    { mode: 'single PUT, answer without ETag (HEAD fallback)', opts: { answer: 'none' as const } },
    { mode: 'multipart, answer without ETag (HEAD fallback)', opts: { partSize: 64 * 1024, answer: 'none' as const } },
  ])('a copy damaged on the way is detected, removed, and repaired by the next pass: $mode', async ({ opts }) => {
    const a = new MemStore();
    const data = await fill(a, [5000, 200_000, 7000]);
    let damaged = true;
    const b = new MemStore({ ...opts, damage: (key, buf) => (damaged && key === 'k/1' ? flip(buf) : buf) });
    const r1 = await syncRepo(a, b);
    expect(r1).toMatchObject({ copied: 2, failed: 1 });
    expect(r1.errors[0]).toMatchObject({ key: 'k/1', code: 'REPO_VERIFY_FAILED' });
    expect(b.objects.has('k/1')).toBe(false);
    damaged = false;
    const r2 = await syncRepo(a, b);
    expect(r2).toMatchObject({ copied: 1, failed: 0, skipped: 2 });
    expect(b.objects.get('k/1')?.data.equals(data.get('k/1')!)).toBe(true);
  });

  it("'head' mode re-reads every copy; an answer without an ETag falls back to HEAD", async () => {
    const a = new MemStore();
    await fill(a, [10, 20, 30]);
    const b = new MemStore();
    expect(await syncRepo(a, b, { verify: 'head' })).toMatchObject({ copied: 3, failed: 0 });
    expect(b.heads).toBe(3);
    const c = new MemStore({ answer: 'none' });
    expect(await syncRepo(a, c)).toMatchObject({ copied: 3, failed: 0 });
    expect(c.heads).toBe(3);
  });

  it('a HEAD that sees the object before it is fully written is asked again', async () => {
    const a = new MemStore();
    await fill(a, [4000, 5000]);
    const b = new MemStore({ answer: 'none' });
    const head = b.head.bind(b);
    const early = new Set(['k/0', 'k/1']);
    // The first HEAD after each PUT sees an empty file (a server that answers before it flushed).
    b.head = async (key: string) => {
      const info = await head(key);
      if (info && early.delete(key)) return { ...info, size: 0 };
      return info;
    };
    expect(await syncRepo(a, b)).toMatchObject({ copied: 2, failed: 0 });
    expect(b.heads).toBe(4);
  });

  it('a single PUT carries the source MD5 as Content-MD5; a server that checks it keeps its old copy', async () => {
    const a = new MemStore();
    const data = await fill(a, [5000, 200_000]);
    let damaged = false;
    const b = new MemStore({ checkMd5: true, damage: (key, buf) => (damaged && key === 'k/1' ? flip(buf) : buf) });
    const old = randomBytes(100);
    await b.put('k/1', Readable.from([old]), old.length);
    damaged = true;
    const r1 = await syncRepo(a, b);
    expect(r1).toMatchObject({ copied: 1, failed: 1 });
    expect(r1.errors[0]).toMatchObject({ key: 'k/1', code: 'REPO_VERIFY_FAILED' });
    expect(b.contentMd5.get('k/1')).toBe(md5(data.get('k/1')!));
    // Refused before storing: the object the target had is still there, untouched.
    expect(b.objects.get('k/1')?.data.equals(old)).toBe(true);
    damaged = false;
    expect(await syncRepo(a, b)).toMatchObject({ copied: 1, failed: 0, skipped: 1 });
    expect(b.objects.get('k/1')?.data.equals(data.get('k/1')!)).toBe(true);
    // A multipart upload has no whole-object Content-MD5; its parts are hashed in flight instead.
    const c = new MemStore({ partSize: 64 * 1024 });
    expect(await syncRepo(a, c)).toMatchObject({ copied: 2, failed: 0 });
    expect(c.contentMd5.get('k/1')).toBeNull();
    expect(c.contentMd5.get('k/0')).toBe(md5(data.get('k/0')!));
  });

  it('a target whose ETags are not MD5s is checked by reading the copy back', async () => {
    const a = new MemStore();
    const data = await fill(a, [3000, 9000]);
    let damaged = false;
    const b = new MemStore({ opaqueEtags: true, damage: (key, buf) => (damaged && key === 'k/0' ? flip(buf) : buf) });
    expect(await syncRepo(a, b)).toMatchObject({ copied: 2, failed: 0 });
    expect(b.gets).toBe(2);
    for (const [k, v] of data) expect(b.objects.get(k)?.data.equals(v)).toBe(true);
    damaged = true;
    const c = new MemStore({ opaqueEtags: true, damage: (key, buf) => (key === 'k/0' ? flip(buf) : buf) });
    const r = await syncRepo(a, c);
    expect(r).toMatchObject({ copied: 1, failed: 1 });
    expect(r.errors[0]).toMatchObject({ key: 'k/0', code: 'REPO_VERIFY_FAILED' });
    expect(c.objects.has('k/0')).toBe(false);
  });

  it('bytes that do not match the source ETag are refused', async () => {
    const a = new MemStore();
    await fill(a, [4000]);
    // The source's body differs from what its listing and GET headers claim (damaged on the way out).
    const liar: ObjectStore = Object.assign(Object.create(a) as MemStore, {
      get: async (k: string) => {
        const body = (await a.get(k)) as ObjectBody;
        const bytes: Buffer[] = [];
        for await (const c of body) bytes.push(c as Buffer);
        const out = Readable.from([flip(Buffer.concat(bytes))]) as ObjectBody;
        out.info = body.info;
        return out;
      },
    });
    const b = new MemStore();
    const err = await copyObject(liar, b, (await a.head('k/0'))!, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('REPO_VERIFY_FAILED');
    expect(b.objects.size).toBe(0);
  });
});
