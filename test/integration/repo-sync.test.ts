/**
 * syncRepo between two real s3rver instances on loopback. Every fault test checks what was preserved.
 */
import { randomBytes } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { syncRepo, type SyncProgress } from '../../src/replication/repo/engine.js';
import { Readable, Transform } from 'node:stream';
import { HaError } from '../../src/errors.js';
import type { ObjectStore } from '../../src/ports.js';
import type { ObjectBody } from '../../src/replication/repo/types.js';
import type { EventInput } from '../../src/events/bus.js';
import { contentSnapshot, fillSmall, listing, md5, MiB, putBytes, readBytes, RepoLab, wrapStore } from './repo-helpers.js';

const lab = new RepoLab();
afterEach(() => lab.close());

/** A view of `store` whose body for `key` aborts `ctl` once `after` bytes of it were read (mid-transfer). */
function abortAfter(store: ObjectStore, key: string, after: number, ctl: AbortController): ObjectStore {
  return wrapStore(store, {
    get: async (k) => {
      const body = (await store.get(k)) as ObjectBody;
      if (k !== key) return body;
      let n = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _e, cb) {
          n += chunk.length;
          if (n > after) ctl.abort();
          cb(null, chunk);
        },
      }) as Transform & { info?: ObjectBody['info'] };
      counted.info = body.info;
      body.once('error', (e) => counted.destroy(e));
      body.pipe(counted);
      return counted;
    },
  });
}

async function errorOf(p: Promise<unknown>): Promise<HaError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HaError) return err;
    throw err;
  }
  throw new Error('expected the pass to fail');
}

describe('syncRepo', () => {
  it('initial sync, no-op pass, changed object, deleted object', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 12);
    const big = randomBytes(11 * MiB);
    await putBytes(a.store, 'img/large.raw', big);

    const first = await syncRepo(a.store, b.store);
    expect(first).toMatchObject({ copied: 13, failed: 0, deleted: 0, skipped: 0, sourceObjects: 13 });
    expect(first.bytes).toBeGreaterThan(11 * MiB);
    expect(await contentSnapshot(b.store)).toEqual(await contentSnapshot(a.store));
    const head = await b.store.head('img/large.raw');
    expect(head?.metadata?.['nha-source-etag']).toBe(md5(big));

    const noop = await syncRepo(a.store, b.store);
    expect(noop).toMatchObject({ copied: 0, deleted: 0, skipped: 13, failed: 0, bytes: 0 });

    const changed = randomBytes(5000);
    await putBytes(a.store, 'img/003.qcow2', changed);
    const r3 = await syncRepo(a.store, b.store);
    expect(r3).toMatchObject({ copied: 1, skipped: 12, deleted: 0 });
    expect(md5(await readBytes(b.store, 'img/003.qcow2'))).toBe(md5(changed));

    await a.store.delete('img/007.qcow2');
    const r4 = await syncRepo(a.store, b.store);
    expect(r4).toMatchObject({ copied: 0, deleted: 1 });
    expect(await b.store.head('img/007.qcow2')).toBeNull();
    expect(await contentSnapshot(b.store)).toEqual(await contentSnapshot(a.store));
  });

  it("verify 'head' (a HEAD per copy on top of the PUT answer) yields identical content (v2, single PUT)", async () => {
    const a = await lab.repo();
    const bRepo = await lab.repo();
    const b = bRepo.storeWith({ signatureVersion: 'v2', multipart: false });
    await fillSmall(a.store, 6);
    await putBytes(a.store, 'img/large.raw', randomBytes(6 * MiB));
    const r = await syncRepo(a.store, b, { verify: 'head' });
    expect(r).toMatchObject({ copied: 7, failed: 0 });
    expect(await contentSnapshot(b)).toEqual(await contentSnapshot(a.store));
    expect((await b.head('img/large.raw'))?.metadata?.['nha-source-etag']).toBeDefined();
  });

  it('dry run plans without writing', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 3);
    const r = await syncRepo(a.store, b.store, { dryRun: true });
    expect(r.planned.copy).toBe(3);
    expect(r.copied).toBe(0);
    expect((await listing(b.store)).size).toBe(0);
  });

  it('delete guard trips, emits an event and deletes nothing (copies still happen)', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 10);
    await syncRepo(a.store, b.store);
    for (const k of ['img/001.qcow2', 'img/002.qcow2', 'img/003.qcow2']) await a.store.delete(k);
    await putBytes(a.store, 'img/new.qcow2', randomBytes(100));
    const events: EventInput[] = [];
    const err = await errorOf(syncRepo(a.store, b.store, { emit: (e) => events.push(e) }));
    expect(err.code).toBe('REPO_DELETE_GUARD');
    expect(err.message).toMatch(/would delete 3 of 10/);
    expect(events.map((e) => e.type)).toEqual(['repo_delete_guard']);
    const left = await listing(b.store);
    expect(left.has('img/001.qcow2') && left.has('img/002.qcow2') && left.has('img/003.qcow2')).toBe(true);
    expect(left.has('img/new.qcow2')).toBe(true);
    // An operator who means it raises the fraction for one pass.
    const r = await syncRepo(a.store, b.store, { maxDeleteFraction: 0.5 });
    expect(r.deleted).toBe(3);
  });

  it('a write that reaches both sides between the two listings is not deleted from the target (live replication)', async () => {
    /** The source lists first; then the write lands on both sides; then the target lists (and sees it). */
    async function racedPass(deferRecentMs: number) {
      const a = await lab.repo();
      const b = await lab.repo();
      await fillSmall(a.store, 20);
      await syncRepo(a.store, b.store);
      const body = randomBytes(2048);
      let written!: () => void;
      const landed = new Promise<void>((r) => (written = r));
      const source = wrapStore(a.store, {
        list: async function* (prefix) {
          yield* a.store.list(prefix);
          await putBytes(b.store, 'img/mid.qcow2', body);
          await putBytes(a.store, 'img/mid.qcow2', body);
          written();
        },
      });
      const target = wrapStore(b.store, {
        list: async function* (prefix) {
          await landed;
          yield* b.store.list(prefix);
        },
      });
      const r = await syncRepo(source, target, { deferRecentMs });
      return { r, onTarget: (await listing(b.store)).has('img/mid.qcow2') };
    }
    // What the pass does without the grace: the listings say "delete".
    const bare = await racedPass(0);
    expect(bare.r.deleted).toBe(1);
    expect(bare.onTarget).toBe(false);
    const guarded = await racedPass(5000);
    expect(guarded.r).toMatchObject({ deleted: 0, deferred: 1, failed: 0 });
    expect(guarded.onTarget).toBe(true);
  });

  it('with the grace, a recent target object the puller wrote is replaced at once; one written elsewhere waits for the next pass', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 20);
    await syncRepo(a.store, b.store);
    // Changed on the source since the puller copied it a moment ago: copied now.
    await putBytes(a.store, 'img/001.qcow2', randomBytes(300));
    // Written on the target by someone else (the front) with other content than the source lists: waits.
    await putBytes(b.store, 'img/002.qcow2', randomBytes(400));
    const r = await syncRepo(a.store, b.store, { deferRecentMs: 5000 });
    expect(r).toMatchObject({ copied: 1, deferred: 1, failed: 0 });
    expect(md5(await readBytes(b.store, 'img/001.qcow2'))).toBe(md5(await readBytes(a.store, 'img/001.qcow2')));
    expect(md5(await readBytes(b.store, 'img/002.qcow2'))).not.toBe(md5(await readBytes(a.store, 'img/002.qcow2')));
    // Without the grace (a one-shot mirror) the listings decide.
    expect(await syncRepo(a.store, b.store)).toMatchObject({ copied: 1, deferred: 0 });
  });

  it('an empty source never empties the target unless allowed', async () => {
    const empty = await lab.repo();
    const b = await lab.repo();
    const before = await fillSmall(b.store, 4);
    const err = await errorOf(syncRepo(empty.store, b.store, { maxDeleteFraction: 1 }));
    expect(err.code).toBe('REPO_DELETE_GUARD');
    expect(err.message).toMatch(/lists no objects/);
    expect([...(await listing(b.store)).keys()].sort()).toEqual([...before.keys()].sort());
    const r = await syncRepo(empty.store, b.store, { allowEmptySource: true, maxDeleteFraction: 1 });
    expect(r.deleted).toBe(4);
  });

  it.each([
    { mode: 'multipart (v4)', target: { multipart: true } },
    { mode: 'single PUT (v2, Cumulus)', target: { multipart: false, signatureVersion: 'v2' as const } },
  ])('an interrupted large copy resumes without recopying finished objects: $mode', async ({ target }) => {
    const a = await lab.repo();
    const bRepo = await lab.repo();
    const b = bRepo.storeWith(target);
    const small = await fillSmall(a.store, 5, 'a/');
    const big1 = randomBytes(11 * MiB);
    const big2 = randomBytes(6 * MiB);
    await putBytes(a.store, 'z/big1.raw', big1);
    await putBytes(a.store, 'z/big2.raw', big2);

    const ctl = new AbortController();
    const seen: SyncProgress[] = [];
    const r1 = await syncRepo(abortAfter(a.store, 'z/big1.raw', 3 * MiB, ctl), b, {
      concurrency: 1,
      signal: ctl.signal,
      onProgress: (p) => seen.push(p),
    });
    expect(r1.aborted).toBe(true);
    expect(r1.copied).toBe(5);
    expect(seen.some((p) => p.phase === 'copy' && p.bytesDone > 0 && p.bytesPerSec > 0)).toBe(true);
    expect(small.size).toBe(5);
    // No complete-looking copy of the interrupted object.
    const partial = await b.head('z/big1.raw');
    if (partial) expect(partial.size === big1.length && partial.etag === md5(big1)).toBe(false);
    expect(await b.head('z/big2.raw')).toBeNull();
    const smallMtimes = new Map([...(await listing(b))].filter(([k]) => k.startsWith('a/')).map(([k, v]) => [k, v.mtimeMs]));

    const r2 = await syncRepo(a.store, b);
    expect(r2).toMatchObject({ copied: 2, skipped: 5, failed: 0, aborted: false });
    for (const [k, m] of smallMtimes) expect((await b.head(k))?.mtimeMs).toBe(m);
    expect(md5(await readBytes(b, 'z/big1.raw'))).toBe(md5(big1));
    expect(md5(await readBytes(b, 'z/big2.raw'))).toBe(md5(big2));
  });

  it('a corrupt target object is found by the deep pass and repaired', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    const data = await fillSmall(a.store, 4);
    await syncRepo(a.store, b.store);
    // Flip bytes on disk behind the server's back: size and the cached ETag stay the same.
    const fh = await open(b.cumulus.objectPath('img/002.qcow2'), 'r+');
    await fh.write(Buffer.from('CORRUPT'), 0, 7, 100);
    await fh.close();
    const quick = await syncRepo(a.store, b.store);
    expect(quick.copied).toBe(0);
    const deep = await syncRepo(a.store, b.store, { deep: true });
    expect(deep).toMatchObject({ corrupt: 1, copied: 1, failed: 0 });
    expect(md5(await readBytes(b.store, 'img/002.qcow2'))).toBe(md5(data.get('img/002.qcow2')!));
    expect((await syncRepo(a.store, b.store, { deep: true })).corrupt).toBe(0);
  });

  it('wrong credentials or a missing bucket fail clearly and delete nothing', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 3);
    await syncRepo(a.store, b.store);
    const before = await contentSnapshot(b.store);

    const badSecret = a.storeWith({ signatureVersion: 'v2', secretAccessKey: 'wrong-secret' });
    const e1 = await errorOf(syncRepo(badSecret, b.store, { allowEmptySource: true, maxDeleteFraction: 1 }));
    expect(e1.code).toBe('REPO_AUTH_FAILED');
    expect(e1.message).toMatch(/credentials/);

    const noBucket = a.storeWith({ bucket: 'Missing' });
    const e2 = await errorOf(syncRepo(noBucket, b.store, { allowEmptySource: true, maxDeleteFraction: 1 }));
    expect(e2.code).toBe('REPO_BUCKET_MISSING');

    const badTarget = b.storeWith({ accessKeyId: 'unknown-key' });
    const e3 = await errorOf(syncRepo(a.store, badTarget));
    expect(e3.code).toBe('REPO_AUTH_FAILED');

    expect(await contentSnapshot(b.store)).toEqual(before);
  });

  it('reverse sync with quarantine keeps overwritten and deleted target data (v2, single PUT, PUT-copy)', async () => {
    // After a failover the standby (s) took writes; the old primary (p) has its own divergent data.
    const sRepo = await lab.repo();
    const pRepo = await lab.repo();
    const s = sRepo.storeWith({ signatureVersion: 'v2', multipart: false });
    const p = pRepo.storeWith({ signatureVersion: 'v2', multipart: false });
    const shared = await fillSmall(s, 10);
    await syncRepo(s, p);
    const newer = randomBytes(4000);
    await putBytes(s, 'img/001.qcow2', newer);
    await putBytes(s, 'img/uploaded-during-outage.qcow2', randomBytes(2000));
    const divergent = randomBytes(3000);
    await putBytes(p, 'img/only-on-old-primary.qcow2', divergent);
    const oldVersion = shared.get('img/001.qcow2')!;

    const r = await syncRepo(s, p, { conflictPolicy: 'quarantine', eventId: 'failback-1', maxDeleteFraction: 0.2 });
    expect(r).toMatchObject({ copied: 2, deleted: 1, quarantined: 2, failed: 0, quarantinePrefix: 'nha-quarantine/failback-1/' });
    expect(md5(await readBytes(p, 'img/001.qcow2'))).toBe(md5(newer));
    expect(md5(await readBytes(p, 'nha-quarantine/failback-1/img/001.qcow2'))).toBe(md5(oldVersion));
    expect(md5(await readBytes(p, 'nha-quarantine/failback-1/img/only-on-old-primary.qcow2'))).toBe(md5(divergent));
    expect(await p.head('img/only-on-old-primary.qcow2')).toBeNull();
    // Quarantined objects are outside replication: the next pass neither copies nor deletes them.
    expect(await syncRepo(s, p)).toMatchObject({ copied: 0, deleted: 0 });
    expect(await p.head('nha-quarantine/failback-1/img/001.qcow2')).not.toBeNull();
  });

  it('an object killed mid-write on the target (no metadata) is still quarantined and replaced, once', async () => {
    // kill -9 of a node while an upload landed: s3rver wrote the bytes but neither the MD5 nor the
    // metadata file. It still lists and serves the object, but every server-side copy of it fails.
    const a = await lab.repo();
    const b = await lab.repo();
    const want = randomBytes(16384);
    const torn = randomBytes(16384);
    await putBytes(a.store, 'VMS/u1/upload-0013.img', want);
    await putBytes(b.store, 'VMS/u1/upload-0013.img', torn);
    const path = b.cumulus.objectPath('VMS/u1/upload-0013.img');
    await writeFile(`${path}.md5`, '');
    await rm(path.replace(/object$/, 'metadata.json'));
    await expect(b.store.copy!('VMS/u1/upload-0013.img', 'probe/copy')).rejects.toThrow(/InternalError/);
    await b.store.delete('probe/copy');

    const r = await syncRepo(a.store, b.store, { conflictPolicy: 'quarantine', eventId: 'torn' });
    expect(r).toMatchObject({ copied: 1, quarantined: 1, failed: 0 });
    expect(md5(await readBytes(b.store, 'VMS/u1/upload-0013.img'))).toBe(md5(want));
    // The torn bytes are kept, under one key, and nothing else was left behind.
    expect(md5(await readBytes(b.store, 'nha-quarantine/torn/VMS/u1/upload-0013.img'))).toBe(md5(torn));
    expect([...(await listing(b.store)).keys()].sort()).toEqual(['VMS/u1/upload-0013.img', 'nha-quarantine/torn/VMS/u1/upload-0013.img']);
    // Converged: the next pass has nothing to do and quarantines nothing more.
    expect(await syncRepo(a.store, b.store, { conflictPolicy: 'quarantine' })).toMatchObject({ copied: 0, quarantined: 0, failed: 0 });
  });

  it('an object killed mid-write on the source (empty ETag) is copied by its content, once, and counts as in sync', async () => {
    // The primary's store was killed while an upload landed: the bytes are complete, but the server lists
    // and serves the object with an empty ETag. Its content is all there is to go by; a pass that insisted
    // on the ETag failed on it forever and the standby never caught up.
    const a = await lab.repo();
    const b = await lab.repo();
    const data = randomBytes(8192);
    await putBytes(a.store, 'VMS/chaos/chaos-006940.img', data);
    await putBytes(a.store, 'VMS/chaos/chaos-006941.img', randomBytes(100));
    const path = a.cumulus.objectPath('VMS/chaos/chaos-006940.img');
    await writeFile(`${path}.md5`, '');
    await rm(path.replace(/object$/, 'metadata.json'));
    expect((await a.store.head('VMS/chaos/chaos-006940.img'))?.etag).toBe('');

    const first = await syncRepo(a.store, b.store);
    expect(first).toMatchObject({ copied: 2, failed: 0 });
    expect(md5(await readBytes(b.store, 'VMS/chaos/chaos-006940.img'))).toBe(md5(data));
    // Converged: nothing to copy again, nothing behind.
    const again = await syncRepo(a.store, b.store);
    expect(again).toMatchObject({ copied: 0, skipped: 2, failed: 0, deleted: 0 });
    // The deep pass compares content, and finds the copy sound.
    expect(await syncRepo(a.store, b.store, { deep: true })).toMatchObject({ corrupt: 0, copied: 0, failed: 0 });
    // A later, sound upload of the key replaces the copy.
    const next = randomBytes(8192);
    await putBytes(a.store, 'VMS/chaos/chaos-006940.img', next);
    expect(await syncRepo(a.store, b.store)).toMatchObject({ copied: 1, failed: 0 });
    expect(md5(await readBytes(b.store, 'VMS/chaos/chaos-006940.img'))).toBe(md5(next));
  });

  it("an object's ACL travels with it: a public image is public on the target, one made private again becomes private there in the deep pass", async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    const pub = randomBytes(3000);
    await a.store.put('VMS/common/base.img', Readable.from([pub]), pub.length, undefined, { acl: 'public-read' });
    await putBytes(a.store, 'VMS/u1/private.img', randomBytes(2000));
    const anonymous = (url: string, key: string) => fetch(`${url}/Repo/${key}`).then((r) => r.status);
    expect(await anonymous(a.cumulus.url, 'VMS/common/base.img')).toBe(200);

    expect(await syncRepo(a.store, b.store)).toMatchObject({ copied: 2, failed: 0 });
    expect(await b.store.getAcl('VMS/common/base.img')).toBe('public-read');
    expect(await b.store.getAcl('VMS/u1/private.img')).toBe('private');
    expect(await anonymous(b.cumulus.url, 'VMS/common/base.img')).toBe(200);
    expect(await anonymous(b.cumulus.url, 'VMS/u1/private.img')).toBe(403);

    // PUT ?acl on the source changes no listing: the quick pass cannot see it, the deep pass does.
    await a.store.putAcl('VMS/common/base.img', 'private');
    await a.store.putAcl('VMS/u1/private.img', 'authenticated-read');
    expect(await syncRepo(a.store, b.store)).toMatchObject({ copied: 0, aclsFixed: 0 });
    expect(await syncRepo(a.store, b.store, { deep: true, dryRun: true })).toMatchObject({ aclsFixed: 2 });
    expect(await anonymous(b.cumulus.url, 'VMS/common/base.img')).toBe(200);
    expect(await syncRepo(a.store, b.store, { deep: true })).toMatchObject({ copied: 0, corrupt: 0, aclsFixed: 2, failed: 0 });
    expect(await anonymous(b.cumulus.url, 'VMS/common/base.img')).toBe(403);
    expect(await b.store.getAcl('VMS/u1/private.img')).toBe('authenticated-read');
    expect(await syncRepo(a.store, b.store, { deep: true })).toMatchObject({ aclsFixed: 0 });
    // The same through Cumulus's own path (signature v2, single PUT).
    const v2 = b.storeWith({ signatureVersion: 'v2', multipart: false });
    await v2.putAcl('VMS/common/base.img', 'public-read');
    expect(await v2.getAcl('VMS/common/base.img')).toBe('public-read');
    expect(await anonymous(b.cumulus.url, 'VMS/common/base.img')).toBe(200);
  });
});
