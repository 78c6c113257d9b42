import { X509Certificate } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import express, { type Router } from 'express';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { listenServer } from '../../src/api/server.js';
import { certsInit, certsIssue } from '../../src/cli/certs.js';
import { createWitnessApp, WitnessState } from '../../src/cluster/witness.js';
import { systemClock } from '../../src/clock.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { EventBus } from '../../src/events/bus.js';
import { signRequest } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { loadTls, type TlsMaterial } from '../../src/peer/tls.js';
import { cliPath } from '../../fixtures/cluster.js';
import { closeServer, fakeAgent, heartbeat, randomSecret } from './helpers.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'nha-tls-'));
const cluster = join(root, 'cluster');
const other = join(root, 'other');
const secret = randomSecret();
let tls: Record<'a' | 'b' | 'witness', TlsMaterial>;
let foreign: TlsMaterial;
const files = (dir: string, name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, 'ca.crt') });

beforeAll(() => {
  certsInit({ dir: cluster, nodes: ['a', 'b'], witness: true });
  // Another cluster's CA with a node of the same name: same secret, wrong CA.
  certsInit({ dir: other, nodes: ['a'], witness: false });
  tls = { a: loadTls(files(cluster, 'a')), b: loadTls(files(cluster, 'b')), witness: loadTls(files(cluster, 'witness')) };
  foreign = loadTls(files(other, 'a'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A node's API in this process over TLS, with a streamed data route standing in for a base backup. */
async function startNodeApi(node: 'a' | 'b') {
  const dir = mkdtempSync(join(tmpdir(), 'nha-tls-node-'));
  const { agent, calls } = fakeAgent();
  const bus = new EventBus(node, () => 3, { historyFile: join(dir, 'events.jsonl'), ringSize: 100 });
  const db: Router = express.Router();
  db.get('/basebackup', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    Readable.from([Buffer.alloc(256 * 1024, 7)]).pipe(res);
  });
  const app = createApp({ agent, bus, metrics: new Registry(), secret, adminToken: randomSecret(), node, streamPeerRouters: { db } });
  const l = await listenServer(app, { host: '127.0.0.1', port: 0 }, tls[node]);
  cleanups.push(async () => {
    await closeServer(l.server);
    await bus.flush();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ...l, calls };
}

async function startWitness() {
  const app = createWitnessApp(new WitnessState(systemClock, null), secret);
  const l = await listenServer(app, { host: '127.0.0.1', port: 0 }, tls.witness);
  cleanups.push(() => closeServer(l.server));
  return l;
}

function client(node: string, material: TlsMaterial | null) {
  const c = new PeerClient(node, secret, { tls: material });
  cleanups.push(() => c.close());
  return c;
}

/** A signed request sent with the given TLS client options (no client certificate when key/cert are absent). */
function rawSigned(url: string, path: string, body: unknown, opts: https.RequestOptions): Promise<{ status: number; body: string }> {
  const data = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)), ...signRequest(secret, 'a', 'POST', path, data) };
  return new Promise((resolve, reject) => {
    const req = https.request(`${url}${path}`, { method: 'POST', headers, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('certs init', () => {
  it('writes a CA and per-node certificates, every file mode 0600, never over existing files', () => {
    for (const f of ['ca.crt', 'ca.key', 'a.crt', 'a.key', 'b.crt', 'b.key', 'witness.crt', 'witness.key']) {
      expect((statSync(join(cluster, f)).mode & 0o777).toString(8), f).toBe('600');
    }
    const ca = new X509Certificate(readFileSync(join(cluster, 'ca.crt')));
    expect(ca.ca).toBe(true);
    const a = new X509Certificate(readFileSync(join(cluster, 'a.crt')));
    expect(a.ca).toBe(false);
    expect(a.verify(ca.publicKey)).toBe(true);
    expect(a.subject).toMatch(/CN=a/);
    expect(a.subjectAltName).toMatch(/DNS:a, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:(0:0:0:0:0:0:0:1|::1)/);
    expect(a.verify(new X509Certificate(readFileSync(join(other, 'ca.crt'))).publicKey)).toBe(false);
    expect(() => certsInit({ dir: cluster, nodes: ['a'], witness: false })).toThrow(/exist\(s\) already/);
    // A renewal from the same CA, with an extra address, into a new directory.
    const renewed = certsIssue({ dir: cluster, name: 'a', outDir: join(root, 'renewed'), san: ['a=10.0.1.1'] });
    expect(new X509Certificate(readFileSync(renewed.cert)).subjectAltName).toMatch(/IP Address:10\.0\.1\.1/);
    expect((statSync(renewed.key).mode & 0o777).toString(8)).toBe('600');
    expect(() => certsIssue({ dir: cluster, name: 'a' })).toThrow(/exists already/);
  });
});

describe('TLS between the nodes and the witness', () => {
  it('a node pair and the witness talk over mutual TLS: heartbeats both ways, a lease from the witness, a streamed base backup', async () => {
    const a = await startNodeApi('a');
    const b = await startNodeApi('b');
    const w = await startWitness();
    expect(a.url).toMatch(/^https:/);
    const ca = client('a', tls.a);
    const cb = client('b', tls.b);
    expect((await ca.post<{ ack: boolean }>(b.url, '/peer/heartbeat', heartbeat('a'), 3000)).ack).toBe(true);
    expect((await cb.post<{ ack: boolean }>(a.url, '/peer/heartbeat', heartbeat('b'), 3000)).ack).toBe(true);
    expect(b.calls.map((c) => c.kind)).toEqual(['heartbeat']);
    expect(a.calls.map((c) => c.kind)).toEqual(['heartbeat']);
    const lease = await ca.post<{ granted: boolean; holder: string }>(w.url, '/witness/acquire', { node: 'a', epoch: 1, leaseMs: 700 }, 3000);
    expect(lease).toMatchObject({ granted: true, holder: 'a' });
    const stream = await cb.getStream(a.url, '/peer/db/basebackup', 3000);
    let size = 0;
    for await (const c of stream) size += (c as Buffer).length;
    expect(size).toBe(256 * 1024);
    // The port speaks only TLS: a plain-HTTP request gets no answer from the API.
    await expect(fetch(a.url.replace('https:', 'http:') + '/health', { signal: AbortSignal.timeout(3000) })).rejects.toThrow();
    // Load balancers reach /health over TLS without a client certificate.
    const health = await new Promise<number>((resolve, reject) =>
      https.get(`${a.url}/health`, { ca: tls.a.ca, agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject),
    );
    expect(health).toBe(200);
  });

  it('a client without a certificate, or with one from another CA, is refused on /peer and /witness before its request is handled', async () => {
    const b = await startNodeApi('b');
    const w = await startWitness();
    const none = { ca: tls.a.ca };
    const wrongCa = { ca: tls.a.ca, cert: foreign.cert, key: foreign.key };
    for (const [what, opts] of [
      ['no certificate', none],
      ['a certificate from another CA', wrongCa],
    ] as const) {
      const hb = await rawSigned(b.url, '/peer/heartbeat', heartbeat('a'), opts);
      expect(hb.status, what).toBe(401);
      expect(JSON.parse(hb.body), what).toMatchObject({ error: 'PEER_AUTH_FAILED', message: expect.stringMatching(/client certificate/) });
      const lease = await rawSigned(w.url, '/witness/acquire', { node: 'a', epoch: 1, leaseMs: 700 }, opts);
      expect(lease.status, what).toBe(401);
    }
    expect(b.calls).toEqual([]);
    // The same signed request with node a's own certificate is accepted (so the refusals above are the certificate's).
    expect((await rawSigned(b.url, '/peer/heartbeat', heartbeat('a'), { ca: tls.a.ca, cert: tls.a.cert, key: tls.a.key })).status).toBe(200);
    // A certificate of this CA issued to someone else (the witness) cannot speak for node a.
    const asWitness = await rawSigned(b.url, '/peer/heartbeat', heartbeat('a'), { ca: tls.a.ca, cert: tls.witness.cert, key: tls.witness.key });
    expect(asWitness.status).toBe(401);
    expect(asWitness.body).toMatch(/names witness \(subject CN\), not the signing node a/);
  });

  it('a client whose CA did not issue the server certificate refuses the server', async () => {
    const b = await startNodeApi('b');
    const w = await startWitness();
    // A client trusting another CA (but holding a certificate the server would accept).
    const mixed: TlsMaterial = { ...tls.a, ca: foreign.ca };
    const c = client('a', mixed);
    await expect(c.post(b.url, '/peer/heartbeat', heartbeat('a'), 3000)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE', message: expect.stringMatching(/not trusted/) });
    await expect(c.post(w.url, '/witness/read', {}, 3000)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' });
    expect(b.calls).toEqual([]);
    // A URL whose host the certificate does not name is refused too.
    await expect(client('a', tls.a).post(b.url.replace('127.0.0.1', '127.0.0.2'), '/peer/heartbeat', heartbeat('a'), 3000)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' });
  });

  it('with tls configured the client never sends in clear text', async () => {
    await expect(client('a', tls.a).post('http://127.0.0.1:9', '/peer/heartbeat', heartbeat('a'), 1000)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/must be https/) });
  });
});

describe('the tls config block', () => {
  const base = (tlsBlock: string, url = 'https://127.0.0.1:8702') => `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${JSON.stringify(randomSecret())}
adminToken: ${JSON.stringify(randomSecret())}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "${url}" ] } ]
witness: { url: "https://127.0.0.1:8790" }
${tlsBlock}`;
  const check = (text: string) => parseConfigText(text, clusterConfigSchema, { env: {}, crossChecks: [clusterCrossChecks] });
  const block = (f: { cert: string; key: string; ca: string }) => `tls: { cert: ${f.cert}, key: ${f.key}, ca: ${f.ca} }`;

  it('accepts the files of certs init', () => {
    const r = check(base(block(files(cluster, 'a'))));
    expect(r.problems).toEqual([]);
    expect(r.config!.tls).toEqual(files(cluster, 'a'));
  });

  it('names the bad key: a missing file, a key others can read, a key of another certificate, a certificate of another CA', () => {
    const f = files(cluster, 'a');
    expect(check(base(block({ ...f, cert: join(root, 'nope.crt') }))).problems).toEqual([{ key: 'tls.cert', problem: expect.stringMatching(/cannot read .*nope\.crt: ENOENT/) }]);
    expect(check(base(block({ ...f, ca: join(root, 'nope-ca.crt') }))).problems).toEqual([{ key: 'tls.ca', problem: expect.stringMatching(/ENOENT/) }]);
    const loose = join(root, 'loose.key');
    copyFileSync(f.key, loose);
    chmodSync(loose, 0o644);
    expect(check(base(block({ ...f, key: loose }))).problems).toEqual([{ key: 'tls.key', problem: expect.stringMatching(/mode 0644; expected mode 0600/) }]);
    expect(check(base(block({ ...f, key: join(cluster, 'b.key') }))).problems).toEqual([{ key: 'tls.key', problem: expect.stringMatching(/not the private key of/) }]);
    expect(check(base(block({ ...f, ca: join(other, 'ca.crt') }))).problems).toEqual([{ key: 'tls.cert', problem: expect.stringMatching(/not signed by the CA/) }]);
    const garbage = join(root, 'garbage.crt');
    writeFileSync(garbage, 'not a certificate\n');
    expect(check(base(block({ ...f, cert: garbage }))).problems).toEqual([{ key: 'tls.cert', problem: expect.stringMatching(/holds no PEM certificate/) }]);
    expect(check(base('tls: { cert: /x }')).problems.map((p) => p.key).sort()).toEqual(['tls.ca', 'tls.key']);
  });

  it('peer and witness URLs must be https:// with tls, http:// without', () => {
    expect(check(base(block(files(cluster, 'a')), 'http://127.0.0.1:8702')).problems).toEqual([
      { key: 'peers.0.urls.0', problem: expect.stringMatching(/but tls is configured \(expected an https:\/\/ URL/) },
    ]);
    // Without tls a witness also requires dataSecret (key separation).
    expect(check(base('')).problems.map((p) => p.key).sort()).toEqual(['dataSecret', 'peers.0.urls.0', 'witness.url']);
  });

  it('with a db, the certificate must name db.advertiseHost (the peer\'s standby connects with sslmode=verify-full)', () => {
    const db = (host: string) =>
      `db: { dataDir: /tmp/x/pg, archiveDir: /tmp/x/archive, superuserPassword: pw-1, replicationPassword: pw-2, advertiseHost: "${host}", peer: { host: 127.0.0.1, port: 5433 } }`;
    expect(check(`${base(block(files(cluster, 'a')))}\n${db('127.0.0.1')}`).problems).toEqual([]);
    expect(check(`${base(block(files(cluster, 'a')))}\n${db('a')}`).problems).toEqual([]);
    expect(check(`${base(block(files(cluster, 'a')))}\n${db('10.9.8.7')}`).problems).toEqual([
      { key: 'db.advertiseHost', problem: expect.stringMatching(/is 10\.9\.8\.7, which .*a\.crt does not name .*--san a=10\.9\.8\.7/) },
    ]);
  });

  it('`config check` and the witness name the bad key or option (real processes)', async () => {
    const cfg = join(root, 'node.yaml');
    writeFileSync(cfg, base(block({ ...files(cluster, 'a'), key: join(root, 'missing.key') })));
    const out = await run(process.execPath, [cliPath, 'config', 'check', cfg]).then(
      () => '',
      (err: { stderr: string; code: number }) => (expect(err.code).toBe(1), err.stderr),
    );
    expect(out).toMatch(/tls\.key: cannot read .*missing\.key: ENOENT/);
    const secretFile = join(root, 'witness.secret');
    writeFileSync(secretFile, secret, { mode: 0o600 });
    const w = await run(process.execPath, [cliPath, 'witness', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'w0'), '--secret-file', secretFile, '--tls-cert', join(cluster, 'witness.crt'), '--tls-key', join(cluster, 'witness.key'), '--tls-ca', join(other, 'ca.crt')], { timeout: 20_000 }).then(
      () => '',
      (err: { stderr: string }) => err.stderr,
    );
    expect(w).toMatch(/--tls-cert: .* not signed by the CA/);
  });
});

describe('the witness process over TLS', () => {
  let proc: ChildProcess | null = null;
  // Wait for the exit: the witness writes its replay marks on SIGTERM, which must happen before the temp dir goes.
  afterEach(async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  });

  it('serves lease calls over mutual TLS and refuses a client without a certificate', async () => {
    const secretFile = join(root, 'w.secret');
    writeFileSync(secretFile, secret, { mode: 0o600 });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root };
    proc = spawn(process.execPath, [cliPath, 'witness', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'w1'), '--secret-file', secretFile, '--tls-cert', join(cluster, 'witness.crt'), '--tls-key', join(cluster, 'witness.key'), '--tls-ca', join(cluster, 'ca.crt')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString('utf8')));
    let port = 0;
    for (let i = 0; i < 200 && !port; i++) {
      const m = /"port":(\d+).*witness listening \(HTTPS/.exec(log);
      if (m) port = Number(m[1]);
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(port, log).toBeGreaterThan(0);
    const url = `https://127.0.0.1:${port}`;
    expect(await client('a', tls.a).post(url, '/witness/acquire', { node: 'a', epoch: 1, leaseMs: 700 }, 3000)).toMatchObject({ granted: true });
    const refused = await rawSigned(url, '/witness/acquire', { node: 'a', epoch: 2, leaseMs: 700 }, { ca: tls.a.ca });
    expect(refused.status).toBe(401);
    await expect(client('a', { ...tls.a, ca: foreign.ca }).post(url, '/witness/read', {}, 3000)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' });
  });
});
