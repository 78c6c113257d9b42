/**
 * The write-through front of repo.mode sync against two real Cumulus stand-ins (s3rver child processes):
 * an acknowledged upload is on both before 200; unauthenticated or wrongly signed requests change
 * nothing; the standby's repository killed mid-upload is never acknowledged alone until the data-holder
 * record names this node alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { signV2, stringToSignV2 } from '../../adapters/cumulus/sigv2.js';
import { createHash } from 'node:crypto';
import { RepoFront } from '../../adapters/cumulus/front.js';
import { FrontGuard } from '../../src/replication/repo/front-guard.js';
import { MiB, md5, putBytes, readBytes } from './repo-helpers.js';

const ACCESS = 'front-test-key';
const SECRET = 'front-test-secret-0123456789';
const distRoot = join(import.meta.dirname, '..', '..', 'dist');

interface Proc {
  child: ChildProcess;
  url: string;
  dir: string;
}

async function cumulus(): Promise<Proc> {
  const dir = await mkdtemp(join(tmpdir(), 'nha-front-'));
  // --multipart: the front forwards multipart uploads to S3 servers that have them (Cumulus has none).
  const child = spawn(process.execPath, [join(distRoot, 'fixtures', 'cumulus', 'main.js'), '--dir', dir, '--port', '0', '--access-key', ACCESS, '--secret-key', SECRET, '--multipart'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (c) => reject(new Error(`cumulus exited ${c}`)));
  });
  return { child, url: (JSON.parse(line) as { url: string }).url, dir };
}

const procs: Proc[] = [];
const closers: Array<() => Promise<void> | void> = [];
let a: Proc;
let b: Proc;

beforeAll(async () => {
  delete process.env.AWS_CA_BUNDLE;
  a = await cumulus();
  b = await cumulus();
  procs.push(a, b);
});

afterAll(async () => {
  for (const p of procs) {
    p.child.kill('SIGKILL');
    await rm(p.dir, { recursive: true, force: true });
  }
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const store = (endpoint: string, extra: Partial<ConstructorParameters<typeof S3Store>[0]> = {}) => {
  const s = new S3Store({ endpoint, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET, signatureVersion: 'v2', multipart: false, maxAttempts: 1, ...extra });
  closers.push(() => s.close());
  return s;
};

async function front(
  opts: { claim?: (peerHolds: boolean) => Promise<boolean>; degradeAfterMs?: number; peerUrl?: string; journal?: { deleted(path: string): Promise<void> } } = {},
) {
  let now = 0;
  const events: string[] = [];
  const claims: boolean[] = [];
  const guard = new FrontGuard({
    degradeAfterMs: opts.degradeAfterMs ?? 1000,
    claim: async (p) => {
      claims.push(p);
      return opts.claim ? opts.claim(p) : true;
    },
    emit: (e) => events.push(e.type),
    now: () => now,
  });
  await guard.tick(true);
  const f = new RepoFront({
    host: '127.0.0.1',
    port: 0,
    local: { endpoint: a.url, accessKeyId: ACCESS, secretAccessKey: SECRET },
    peer: { endpoint: opts.peerUrl ?? b.url, accessKeyId: ACCESS, secretAccessKey: SECRET },
    guard: () => guard,
    journal: opts.journal,
  });
  await f.start();
  closers.push(() => f.close());
  return { f, guard, events, claims, advance: (ms: number) => (now += ms) };
}

describe('repository write-through front', () => {
  it('acknowledges an upload only once both repositories hold it, with the same content', async () => {
    const { f } = await front();
    const client = store(f.url);
    const la = store(a.url);
    const lb = store(b.url);
    for (const size of [0, 1, 3 * MiB + 17]) {
      const data = randomBytes(size);
      const key = `VMS/u1/img-${size}.qcow2`;
      await putBytes(client, key, data);
      // Right after the 200: both hold it.
      const [ha, hb] = await Promise.all([la.head(key), lb.head(key)]);
      expect(ha?.etag).toBe(md5(data));
      expect(hb?.etag).toBe(md5(data));
      expect(md5(await readBytes(lb, key))).toBe(md5(data));
      // Reads go through the front to the local repository.
      expect(md5(await readBytes(client, key))).toBe(md5(data));
    }
    await client.delete('VMS/u1/img-1.qcow2');
    expect(await la.head('VMS/u1/img-1.qcow2')).toBeNull();
    expect(await lb.head('VMS/u1/img-1.qcow2')).toBeNull();
    expect(f.stats.both).toBe(4);
  });

  it('multipart uploads: parts and completion go to both, the composite ETags agree', async () => {
    const { f } = await front();
    const client = store(f.url, { multipart: true, partSize: 5 * MiB, multipartThreshold: 5 * MiB });
    const data = randomBytes(12 * MiB + 5);
    await putBytes(client, 'VMS/u1/big.qcow2', data);
    const [ha, hb] = await Promise.all([store(a.url).head('VMS/u1/big.qcow2'), store(b.url).head('VMS/u1/big.qcow2')]);
    // Initiate, three parts and the completion, each answered by both repositories.
    expect(f.stats.both).toBe(5);
    expect(ha?.etag).toBeTruthy();
    expect(hb?.etag).toBe(ha?.etag);
    expect(md5(await readBytes(store(b.url), 'VMS/u1/big.qcow2'))).toBe(md5(data));
  });

  it('refuses anonymous, unknown-key and wrongly signed requests before the body, changing nothing', async () => {
    const { f } = await front();
    const body = Buffer.from('not allowed');
    const anon = await fetch(`${f.url}/Repo/VMS/x/anon.qcow2`, { method: 'PUT', body });
    expect(anon.status).toBe(403);
    expect(await anon.text()).toContain('AccessDenied');
    const badKey = await fetch(`${f.url}/Repo/VMS/x/bad.qcow2`, { method: 'PUT', body, headers: { authorization: 'AWS someone:AAAA', 'x-amz-date': new Date().toUTCString() } });
    expect(badKey.status).toBe(403);
    const wrong = store(f.url, { secretAccessKey: 'not-the-secret-at-all' });
    await expect(putBytes(wrong, 'VMS/x/wrong.qcow2', body)).rejects.toThrow();
    const del = await fetch(`${f.url}/Repo/VMS/u1/img-0.qcow2`, { method: 'DELETE' });
    expect(del.status).toBe(403);
    for (const s of [store(a.url), store(b.url)]) {
      for (const k of ['VMS/x/anon.qcow2', 'VMS/x/bad.qcow2', 'VMS/x/wrong.qcow2']) expect(await s.head(k)).toBeNull();
    }
    expect(f.stats.authFailures).toBeGreaterThanOrEqual(4);
  });

  it('a multi-object delete (POST ?delete) reaches both repositories and journals every key it removed before the 200', async () => {
    const journaled: string[] = [];
    let failJournal = false;
    const journal = {
      deleted: async (path: string) => {
        if (failJournal) throw new Error('disk full');
        journaled.push(decodeURIComponent(path));
      },
    };
    const { f } = await front({ journal });
    const client = store(f.url);
    const keys = ['VMS/md/one.qcow2', 'VMS/md/two & <three>.qcow2', 'VMS/md/keep.qcow2'];
    for (const k of keys) await putBytes(client, k, randomBytes(100));
    // A signed POST ?delete sent as it is on the wire: Content-Length from the body, a declared one, or chunked.
    const multiDelete = (names: string[], framing: { contentLength?: number; chunked?: boolean } = {}) => {
      const esc = (k: string) => k.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      const xml = `<?xml version="1.0" encoding="UTF-8"?><Delete>${names.map((k) => `<Object><Key>${esc(k)}</Key></Object>`).join('')}</Delete>`;
      const headers: Record<string, string> = { 'content-type': 'application/xml', 'content-md5': createHash('md5').update(xml).digest('base64'), 'x-amz-date': new Date().toUTCString() };
      const sts = stringToSignV2({ method: 'POST', path: '/Repo', query: { delete: '' }, headers });
      const framingHeader = framing.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(framing.contentLength ?? Buffer.byteLength(xml)) };
      const u = new URL(f.url);
      return new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(
          { host: u.hostname, port: u.port, method: 'POST', path: '/Repo?delete', headers: { ...headers, ...framingHeader, authorization: `AWS ${ACCESS}:${signV2(sts, SECRET)}` } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
          },
        );
        req.on('error', reject);
        // A declared length above the body's: the answer comes before the rest would be sent.
        if (framing.contentLength !== undefined) req.write(xml);
        else req.end(xml);
      });
    };
    const r = await multiDelete(keys.slice(0, 2));
    expect(r.status, r.text).toBe(200);
    for (const s of [store(a.url), store(b.url)]) {
      expect(await s.head(keys[0])).toBeNull();
      expect(await s.head(keys[1])).toBeNull();
      expect(await s.head(keys[2])).not.toBeNull();
    }
    expect(journaled.sort()).toEqual(['/Repo/VMS/md/one.qcow2', '/Repo/VMS/md/two & <three>.qcow2']);

    // The journal cannot take the tombstones: the delete is not acknowledged.
    failJournal = true;
    const refused = await multiDelete([keys[2]]);
    expect(refused.status).toBe(503);
    expect(refused.text).toContain('delete journal');
    failJournal = false;

    // Without a Content-Length, or with one above the bound, the body is not read: 400, nothing deleted.
    await putBytes(client, keys[0], randomBytes(10));
    for (const framing of [{ chunked: true }, { contentLength: 3 * MiB }]) {
      const bad = await multiDelete([keys[0]], framing);
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('MalformedXML');
    }
    expect(await store(a.url).head(keys[0])).not.toBeNull();
    expect(await store(b.url).head(keys[0])).not.toBeNull();
    expect(journaled).toHaveLength(2);
  });

  it("the standby's repository killed mid-upload: no acknowledgement until the record names this node alone", async () => {
    const c = await cumulus();
    procs.push(c);
    let coordinatorUp = false;
    const { f, guard, events, claims, advance } = await front({ peerUrl: c.url, claim: async () => coordinatorUp, degradeAfterMs: 1000 });
    const client = store(f.url);
    // A slow upload: the standby dies while it streams.
    const chunk = randomBytes(256 * 1024);
    let sent = 0;
    const slow = new Readable({
      read() {
        if (sent === 16) {
          this.push(null);
          return;
        }
        sent++;
        if (sent === 4) c.child.kill('SIGKILL');
        setTimeout(() => this.push(chunk), 20);
      },
    });
    await expect(client.put('VMS/u1/mid.qcow2', slow, 16 * chunk.length)).rejects.toThrow();
    // Gone past degradeAfterMs, but the coordinator cannot be told: still refused.
    advance(2000);
    expect(await guard.tick(false)).toBe('waiting');
    expect(events).toContain('repo.sync.degrade_blocked');
    await expect(putBytes(client, 'VMS/u1/after.qcow2', randomBytes(1000))).rejects.toThrow(/503|unavailable|ServiceUnavailable/i);
    expect(f.stats.alone).toBe(0);
    // The record now names this node alone: acknowledged by the local repository alone, with an event.
    coordinatorUp = true;
    expect(await guard.tick(false)).toBe('degraded');
    expect(claims.at(-1)).toBe(false);
    expect(events).toContain('repo.sync.degraded');
    const data = randomBytes(2000);
    await putBytes(client, 'VMS/u1/alone.qcow2', data);
    expect((await store(a.url).head('VMS/u1/alone.qcow2'))?.etag).toBe(md5(data));
    expect(f.stats.alone).toBe(1);
  });
});
