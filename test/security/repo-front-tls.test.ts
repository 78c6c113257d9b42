/**
 * The write-through repository front serves HTTPS with the node's certificate when `tls` is configured:
 * a real v2-signed upload through it, verified against the cluster CA, lands on both Cumulus stand-ins;
 * a client that does not trust the CA, or expects another host name, gets no answer; the port speaks no
 * clear text.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoFront } from '../../adapters/cumulus/front.js';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { signV2, stringToSignV2 } from '../../adapters/cumulus/sigv2.js';
import { certsInit, certsIssue } from '../../src/cli/certs.js';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { loadTls } from '../../src/peer/tls.js';
import { FrontGuard } from '../../src/replication/repo/front-guard.js';

const ACCESS = 'front-tls-key';
const SECRET = 'front-tls-secret-0123456789';
const distRoot = join(import.meta.dirname, '..', '..', 'dist');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

interface Proc {
  child: ChildProcess;
  url: string;
  dir: string;
}

async function cumulus(): Promise<Proc> {
  const dir = await mkdtemp(join(tmpdir(), 'nha-front-tls-'));
  const child = spawn(process.execPath, [join(distRoot, 'fixtures', 'cumulus', 'main.js'), '--dir', dir, '--port', '0', '--access-key', ACCESS, '--secret-key', SECRET], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (c) => reject(new Error(`cumulus exited ${c}`)));
  });
  return { child, url: (JSON.parse(line) as { url: string }).url, dir };
}

/** An HTTPS endpoint in front of a plain-HTTP Cumulus (a repository reached over TLS), with this certificate. */
async function tlsTerminator(cert: string, key: string, target: string): Promise<{ url: string; close(): Promise<void> }> {
  const t = new URL(target);
  const server = https.createServer({ cert, key }, (req, res) => {
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** One v2-signed S3 request over HTTPS (as an S3 client through the repository VIP would send it). */
function s3(url: string, method: string, path: string, body: Buffer | null, tlsOpts: https.RequestOptions): Promise<{ status: number; body: Buffer; etag?: string }> {
  const headers: Record<string, string> = { 'x-amz-date': new Date().toUTCString(), ...(body ? { 'content-type': 'application/octet-stream', 'content-md5': createHash('md5').update(body).digest('base64') } : {}) };
  const sts = stringToSignV2({ method, path, query: {}, headers });
  headers.authorization = `AWS ${ACCESS}:${signV2(sts, SECRET)}`;
  if (body) headers['content-length'] = String(body.length);
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: u.hostname, port: u.port, method, path, headers, agent: false, timeout: 5000, ...tlsOpts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), etag: res.headers.etag?.replace(/"/g, '') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

describe('repository front over HTTPS with tls configured (real Cumulus stand-ins)', () => {
  let root = '';
  let ca = '';
  let a: Proc;
  let b: Proc;
  let front: RepoFront;
  const stores: S3Store[] = [];
  const store = (endpoint: string) => {
    const s = new S3Store({ endpoint, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET, signatureVersion: 'v2', multipart: false, maxAttempts: 1 });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'nha-front-tls-certs-'));
    certsInit({ dir: join(root, 'certs'), nodes: ['a', 'b'], witness: false });
    const material = loadTls({ cert: join(root, 'certs', 'a.crt'), key: join(root, 'certs', 'a.key'), ca: join(root, 'certs', 'ca.crt') });
    ca = await readFile(join(root, 'certs', 'ca.crt'), 'utf8');
    a = await cumulus();
    b = await cumulus();
    const guard = new FrontGuard({ degradeAfterMs: 1000, claim: async () => true, emit: () => undefined, now: () => 0 });
    await guard.tick(true);
    front = new RepoFront({
      host: '127.0.0.1',
      port: 0,
      local: { endpoint: a.url, accessKeyId: ACCESS, secretAccessKey: SECRET },
      peer: { endpoint: b.url, accessKeyId: ACCESS, secretAccessKey: SECRET },
      guard: () => guard,
      tls: { cert: material.cert, key: material.key, ca: material.ca },
    });
    await front.start();
  });
  afterAll(async () => {
    await front?.close();
    for (const s of stores) s.close();
    for (const p of [a, b]) {
      p?.child.kill('SIGKILL');
      if (p) await rm(p.dir, { recursive: true, force: true });
    }
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('acknowledges an upload sent over TLS (server verified against the CA) once both repositories hold it', async () => {
    expect(front.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const data = randomBytes(256 * 1024 + 3);
    const put = await s3(front.url, 'PUT', '/Repo/VMS/u1/tls.qcow2', data, { ca });
    expect(put.status).toBe(200);
    expect(put.etag).toBe(md5(data));
    const [ha, hb] = await Promise.all([store(a.url).head('VMS/u1/tls.qcow2'), store(b.url).head('VMS/u1/tls.qcow2')]);
    expect(ha?.etag).toBe(md5(data));
    expect(hb?.etag).toBe(md5(data));
    const get = await s3(front.url, 'GET', '/Repo/VMS/u1/tls.qcow2', null, { ca });
    expect(get.status).toBe(200);
    expect(md5(get.body)).toBe(md5(data));
    expect(front.stats.both).toBe(1);
  });

  it("reaches the standby's repository over https:// (verified against the cluster CA), and acknowledges nothing when its certificate does not verify", async () => {
    const bCert = await readFile(join(root, 'certs', 'b.crt'), 'utf8');
    const bKey = await readFile(join(root, 'certs', 'b.key'), 'utf8');
    const good = await tlsTerminator(bCert, bKey, b.url);
    // A certificate from a CA the cluster does not know.
    certsInit({ dir: join(root, 'other'), nodes: ['b'], witness: false });
    const bad = await tlsTerminator(await readFile(join(root, 'other', 'b.crt'), 'utf8'), await readFile(join(root, 'other', 'b.key'), 'utf8'), b.url);
    const material = loadTls({ cert: join(root, 'certs', 'a.crt'), key: join(root, 'certs', 'a.key'), ca: join(root, 'certs', 'ca.crt') });
    const fronts: RepoFront[] = [];
    try {
      for (const peer of [good.url, bad.url]) {
        const guard = new FrontGuard({ degradeAfterMs: 1000, claim: async () => true, emit: () => undefined, now: () => 0 });
        await guard.tick(true);
        const f = new RepoFront({
          host: '127.0.0.1',
          port: 0,
          local: { endpoint: a.url, accessKeyId: ACCESS, secretAccessKey: SECRET },
          peer: { endpoint: peer, accessKeyId: ACCESS, secretAccessKey: SECRET },
          guard: () => guard,
          tls: { cert: material.cert, key: material.key, ca: material.ca },
        });
        await f.start();
        fronts.push(f);
      }
      const data = randomBytes(64 * 1024 + 5);
      const put = await s3(fronts[0].url, 'PUT', '/Repo/VMS/u1/over-tls.qcow2', data, { ca });
      expect(put.status).toBe(200);
      expect((await store(b.url).head('VMS/u1/over-tls.qcow2'))?.etag).toBe(md5(data));
      expect(fronts[0].stats.both).toBe(1);

      const other = randomBytes(1000);
      const refused = await s3(fronts[1].url, 'PUT', '/Repo/VMS/u1/untrusted-peer.qcow2', other, { ca });
      expect(refused.status).toBe(503);
      expect(await store(b.url).head('VMS/u1/untrusted-peer.qcow2')).toBeNull();
      expect(fronts[1].stats.both).toBe(0);
    } finally {
      for (const f of fronts) await f.close();
      await good.close();
      await bad.close();
    }
  });

  it('is refused by a client that does not trust the CA or expects another host name, and speaks no clear text', async () => {
    // Without the cluster CA (the system's roots only): the certificate does not verify.
    await expect(s3(front.url, 'GET', '/Repo/VMS/u1/tls.qcow2', null, {})).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_(GET_ISSUER|VERIFY)/) });
    // The certificate names a, localhost and loopback, not repo.example.
    await expect(s3(front.url, 'GET', '/Repo/VMS/u1/tls.qcow2', null, { ca, servername: 'repo.example' })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const plain = await fetch(front.url.replace('https:', 'http:') + '/Repo/VMS/u1/tls.qcow2', { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status,
      () => null,
    );
    expect(plain === null || plain === 400).toBe(true);
    // Nothing was written by the refused attempts.
    expect(front.stats.writes).toBe(1);
  });

  it('a renewed certificate (setTls, as the TLS reloader calls it) is what new client connections get', async () => {
    const serial = (port: number) =>
      new Promise<string>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
          resolve(s.getPeerX509Certificate()?.serialNumber ?? '');
          s.end();
        });
        s.once('error', reject);
      });
    const port = Number(new URL(front.url).port);
    const before = await serial(port);
    const renewed = certsIssue({ dir: join(root, 'certs'), name: 'a', outDir: join(root, 'renewed') });
    const m = loadTls({ cert: renewed.cert, key: renewed.key, ca: join(root, 'certs', 'ca.crt') });
    front.setTls({ cert: m.cert, key: m.key, ca: m.ca });
    const after = await serial(port);
    expect(after).not.toBe(before);
    expect(after).toBe(new X509Certificate(m.cert).serialNumber);
    // Uploads go on over the new certificate.
    const data = randomBytes(1000);
    const put = await s3(front.url, 'PUT', '/Repo/VMS/u1/after-renewal.qcow2', data, { ca });
    expect(put.status).toBe(200);
    expect((await store(b.url).head('VMS/u1/after-renewal.qcow2'))?.etag).toBe(md5(data));
  });
});
