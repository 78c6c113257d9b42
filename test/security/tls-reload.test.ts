/**
 * Certificates renewed without a restart: the TLS files are watched (and checked at once on SIGHUP); a
 * valid new set goes to the servers (node API, witness) and the peer client, an invalid one changes
 * nothing and is reported. In this process with real TLS, and with real `nimbus-ha run` / `witness`
 * processes over mutual TLS.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import express from 'express';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listenServer, serverTlsOptions } from '../../src/api/server.js';
import { certsInit, certsIssue } from '../../src/cli/certs.js';
import { loadTls, type TlsMaterial } from '../../src/peer/tls.js';
import { TlsReloader } from '../../src/peer/tls-reload.js';
import type { TlsProblem } from '../../src/peer/tls.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, cliPath } from '../../fixtures/cluster.js';
import { closeServer } from './helpers.js';
import { sleep, until } from '../helpers/wait.js';
import { doublePrimaryPoller } from '../helpers/double-primary.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'nha-tls-reload-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** The serial number of the certificate a TLS server presents to a new connection. */
function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const serial = s.getPeerX509Certificate()?.serialNumber ?? '';
      s.end();
      resolve(serial);
    });
    s.once('error', reject);
  });
}
const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;

describe('TlsReloader', () => {
  it('a renewed certificate is served to new connections; a half-written set changes nothing and is reported once', async () => {
    const dir = join(root, 'unit');
    certsInit({ dir, nodes: ['a'], witness: false });
    const files = { cert: join(dir, 'a.crt'), key: join(dir, 'a.key'), ca: join(dir, 'ca.crt') };
    const first = loadTls(files);
    const app = express().get('/', (_req, res) => void res.send('ok'));
    const l = await listenServer(app, { host: '127.0.0.1', port: 0 }, first);
    cleanups.push(() => closeServer(l.server));
    const reloaded: TlsMaterial[] = [];
    const problems: TlsProblem[][] = [];
    const r = new TlsReloader(first, {
      onReload: (m) => {
        reloaded.push(m);
        (l.server as import('node:https').Server).setSecureContext(serverTlsOptions(m));
      },
      onProblem: (p) => void problems.push(p),
    });
    expect(await servedSerial(l.port, first.ca)).toBe(serialOf(files.cert));
    expect(r.check()).toBe(false); // nothing changed

    const renewed = certsIssue({ dir, name: 'a', outDir: join(dir, 'renewed') });
    // The certificate lands before its key: not a valid set yet.
    copyFileSync(renewed.cert, files.cert);
    expect(r.check()).toBe(false);
    expect(r.check()).toBe(false);
    expect(problems).toHaveLength(1);
    expect(problems[0].map((p) => p.field)).toContain('key');
    expect(await servedSerial(l.port, first.ca)).toBe(new X509Certificate(first.cert).serialNumber);
    // Then the key: the set is valid, and new connections get the new certificate.
    copyFileSync(renewed.key, files.key);
    expect(r.check()).toBe(true);
    expect(reloaded).toHaveLength(1);
    expect(await servedSerial(l.port, first.ca)).toBe(serialOf(renewed.cert));
    expect(r.material.notAfter.getTime()).toBeGreaterThan(Date.now());

    // Garbage: reported, the renewed certificate stays in use.
    writeFileSync(files.cert, 'not a certificate');
    expect(r.check()).toBe(false);
    expect(problems.at(-1)!.map((p) => p.field)).toEqual(['cert']);
    expect(await servedSerial(l.port, first.ca)).toBe(serialOf(renewed.cert));
  });

  it('picks a change up by itself (polled), without SIGHUP', async () => {
    const dir = join(root, 'poll');
    certsInit({ dir, nodes: ['a'], witness: false });
    const files = { cert: join(dir, 'a.crt'), key: join(dir, 'a.key'), ca: join(dir, 'ca.crt') };
    let reloads = 0;
    const r = new TlsReloader(loadTls(files), { onReload: () => void reloads++, onProblem: () => undefined, checkMs: 50 });
    r.start();
    cleanups.push(() => r.stop());
    const renewed = certsIssue({ dir, name: 'a', outDir: join(dir, 'renewed') });
    copyFileSync(renewed.key, files.key);
    copyFileSync(renewed.cert, files.cert);
    await until('the poll sees the renewed set', async () => reloads === 1, 5000, 20);
    await sleep(200);
    expect(reloads).toBe(1);
  });
});

describe('real processes over mutual TLS', () => {
  let c: Cluster | undefined;
  afterEach(async () => c?.stop());

  it("SIGHUP after renewing a node's and the witness's certificates: both serve the new ones, the pair stays up, the events say so", async () => {
    c = new Cluster({ tls: true });
    const cl = c;
    await cl.start();
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby over TLS');
    const ca = readFileSync(join(cl.certDir, 'ca.crt'), 'utf8');
    const epoch = (await cl.status('a'))!.epoch;
    for (const name of ['b', 'witness'] as const) {
      // In a child process, as an operator would: key generation must not stall this process, whose
      // event loop runs the fixture's heartbeat path proxies.
      const out = join(cl.dir, `renewed-${name}`);
      await run(process.execPath, [cliPath, 'certs', 'issue', '--dir', cl.certDir, '--name', name, '--out-dir', out]);
      copyFileSync(join(out, `${name}.key`), join(cl.certDir, `${name}.key`));
      copyFileSync(join(out, `${name}.crt`), join(cl.certDir, `${name}.crt`));
    }
    cl.nodes.b.proc!.kill('SIGHUP');
    cl.witness!.kill('SIGHUP');
    const want = { b: serialOf(join(cl.certDir, 'b.crt')), witness: serialOf(join(cl.certDir, 'witness.crt')) };
    await until('b serves its renewed certificate', async () => (await servedSerial(cl.nodes.b.apiPort, ca)) === want.b, 10_000);
    await until('the witness serves its renewed certificate', async () => (await servedSerial(cl.witnessPort, ca)) === want.witness, 10_000);
    expect((await cl.events('b', 'tls_reloaded')).length, JSON.stringify(await cl.events('b', 'tls_reloaded'))).toBe(1);
    expect(readFileSync(join(cl.dir, 'witness.log'), 'utf8')).toContain('TLS files reloaded');
    // The peers keep talking: b (new certificate) is alive on a, the lease has every vote, nothing moved.
    await until('the lease on all 3 votes with the renewed certificates', async () => {
      const a = (await cl.status('a'))!;
      return a.peers[0].alive === true && a.lease.votes === 3;
    }, 20_000);
    const trail = async () => JSON.stringify([...(await cl.events('a')), ...(await cl.events('b'))].map((e) => `${e.node} ${e.time} ${e.type} ${e.message}`), null, 1);
    expect((await cl.status('a'))!.epoch, await trail()).toBe(epoch);
    expect(await cl.events('a', 'failover')).toEqual([]);
    expect(await cl.events('b', 'tls_reload_failed')).toEqual([]);
  });

  it('two faults: certificates renewed and reloaded while the standby takes over from a killed primary; the old primary rejoins on its old certificate', async () => {
    c = new Cluster({ tls: true });
    const cl = c;
    await cl.start();
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby over TLS');
    const ca = readFileSync(join(cl.certDir, 'ca.crt'), 'utf8');
    const epoch = (await cl.status('a'))!.epoch as number;
    // Renewed sets for the standby and the witness are written first (in a child process: key
    // generation must not stall this process, whose event loop runs the heartbeat path proxies) ...
    for (const name of ['b', 'witness'] as const) {
      const out = join(cl.dir, `renewed-${name}`);
      await run(process.execPath, [cliPath, 'certs', 'issue', '--dir', cl.certDir, '--name', name, '--out-dir', out]);
      copyFileSync(join(out, `${name}.key`), join(cl.certDir, `${name}.key`));
      copyFileSync(join(out, `${name}.crt`), join(cl.certDir, `${name}.crt`));
    }
    const poll = doublePrimaryPoller(cl);
    // ... then the primary dies and both reload while b detects it, campaigns and promotes.
    cl.kill('a');
    await sleep(150);
    cl.nodes.b.proc!.kill('SIGHUP');
    cl.witness!.kill('SIGHUP');
    await cl.waitFor((_a, b) => b?.role === 'primary', 15_000, 'b primary after the kill, with its renewed certificate loading');
    expect((await cl.status('b'))!.epoch).toBe(epoch + 1);
    const want = { b: serialOf(join(cl.certDir, 'b.crt')), witness: serialOf(join(cl.certDir, 'witness.crt')) };
    await until('b serves its renewed certificate', async () => (await servedSerial(cl.nodes.b.apiPort, ca)) === want.b, 10_000);
    await until('the witness serves its renewed certificate', async () => (await servedSerial(cl.witnessPort, ca)) === want.witness, 10_000);
    // a returns with the certificate it had (same CA): it rejoins b as standby, and the lease has every vote.
    cl.startNode('a');
    await cl.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary' && b.lease?.votes === 3, 30_000, 'a back as standby of b, all 3 votes');
    const polled = await poll.done();
    expect(polled.both).toBe(0);
    expect(polled.samples).toBeGreaterThan(50);
    expect((await cl.events('b', 'tls_reloaded')).length).toBe(1);
    expect(await cl.events('b', 'tls_reload_failed')).toEqual([]);
    expect((await cl.status('a'))!.epoch).toBe(epoch + 1);
  });

  it('SIGHUP (systemctl reload) without tls stops neither a node nor the witness', async () => {
    c = new Cluster();
    const cl = c;
    await cl.start();
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby');
    cl.nodes.b.proc!.kill('SIGHUP');
    cl.witness!.kill('SIGHUP');
    await sleep(1500);
    expect(cl.nodes.b.proc!.exitCode).toBeNull();
    expect(cl.witness!.exitCode).toBeNull();
    expect((await cl.status('b'))!.role).toBe('standby');
    expect((await cl.status('a'))!.lease.votes).toBe(3);
  });
});
