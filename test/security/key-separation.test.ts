/**
 * Separate keys for lease traffic and data paths: `secret` (the lease key, which the witness holds too)
 * signs heartbeats, votes, takeover offers and witness calls; `dataSecret` signs every data path under
 * /peer (base backups, WAL, file writes, Nimbus state, repository hints). A holder of the lease key alone
 * — the witness — cannot push data to a standby, and the data key does not sign a lease vote. The config
 * rules: dataSecret is held to the rules of secret, differs from secret and adminToken, and is required
 * when a witness runs without tls.
 */
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { isLeasePath, signRequest } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { heartbeat, randomSecret, startApi } from './helpers.js';
import { CHILD_ENV_DENY } from '../../src/util/child-env.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Node b's API with a data route (a stand-in for the file-write route) that records what reached it. */
async function nodeB(secret: string, dataSecret: string) {
  const writes: unknown[] = [];
  const files = express.Router();
  files.post('/batch', (req, res) => {
    writes.push(req.body);
    res.json({ applied: 1 });
  });
  const api = await startApi({ secret, dataSecret, streamPeerRouters: { files }, peerRouters: { repo: express.Router().post('/sync-now', (_req, res) => void res.json({ ok: true })) } });
  cleanups.push(() => api.close());
  return { ...api, writes };
}

async function signedPost(url: string, path: string, key: string, body: unknown) {
  const data = JSON.stringify(body);
  const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...signRequest(key, 'a', 'POST', path, data) }, body: data });
  return { status: r.status, body: await r.text() };
}

describe('lease key and data-path key', () => {
  it('the lease key (all the witness holds) signs no data push; the data key signs no heartbeat', async () => {
    const secret = randomSecret();
    const dataSecret = randomSecret();
    const b = await nodeB(secret, dataSecret);
    const batch = { tree: 'etc', entries: [] };

    const byWitnessKey = await signedPost(b.url, '/peer/files/batch', secret, batch);
    expect(byWitnessKey.status).toBe(401);
    expect(JSON.parse(byWitnessKey.body)).toMatchObject({ error: 'PEER_AUTH_FAILED' });
    expect((await signedPost(b.url, '/peer/repo/sync-now', secret, {})).status).toBe(401);
    expect(b.writes).toEqual([]);

    expect((await signedPost(b.url, '/peer/heartbeat', dataSecret, heartbeat('a'))).status).toBe(401);
    expect(b.calls.filter((c) => c.kind === 'heartbeat')).toEqual([]);

    expect((await signedPost(b.url, '/peer/files/batch', dataSecret, batch)).status).toBe(200);
    expect(b.writes).toEqual([batch]);
    expect((await signedPost(b.url, '/peer/heartbeat', secret, heartbeat('a'))).status).toBe(200);
  });

  it('the node\'s client signs each request with the key of its path and verifies the reply with it', async () => {
    const secret = randomSecret();
    const dataSecret = randomSecret();
    const b = await nodeB(secret, dataSecret);
    const a = new PeerClient('a', secret, { dataSecret });
    cleanups.push(() => a.close());
    expect(await a.post(b.url, '/peer/heartbeat', heartbeat('a'), 2000)).toMatchObject({ ack: true });
    expect(await a.post(b.url, '/peer/files/batch', { tree: 'etc', entries: [] }, 2000)).toEqual({ applied: 1 });
    // A node without the data key (or with another) is refused on the data path, not on heartbeats.
    const old = new PeerClient('a', secret);
    cleanups.push(() => old.close());
    expect(await old.post(b.url, '/peer/heartbeat', heartbeat('a'), 2000)).toMatchObject({ ack: true });
    await expect(old.post(b.url, '/peer/files/batch', { tree: 'etc', entries: [] }, 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
    expect(isLeasePath('/witness/acquire')).toBe(true);
    expect(isLeasePath('/peer/vote')).toBe(true);
    expect(isLeasePath('/peer/db/basebackup?slot=x')).toBe(false);
    expect(isLeasePath('/peer/heartbeat-not')).toBe(false);
  });

  it('without dataSecret both kinds are signed with secret (a node without a witness, or with tls)', async () => {
    const secret = randomSecret();
    const api = await startApi({ secret, streamPeerRouters: { files: express.Router().post('/batch', (_req, res) => void res.json({ applied: 1 })) } });
    cleanups.push(() => api.close());
    const a = new PeerClient('a', secret);
    cleanups.push(() => a.close());
    expect(await a.post(api.url, '/peer/files/batch', { tree: 'etc', entries: [] }, 2000)).toEqual({ applied: 1 });
  });
});

describe('the dataSecret config key', () => {
  const check = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfigText(text, clusterConfigSchema, { env, crossChecks: [clusterCrossChecks] });
  const secret = randomSecret();
  const token = randomSecret();
  const base = (extra: string, witness = 'witness: { url: "http://127.0.0.1:8790" }') => `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${secret}
adminToken: ${token}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]
${witness}
${extra}`;

  it('is required with a witness and without tls, optional without a witness', () => {
    expect(check(base('')).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/is not set, and a witness is configured without tls.*NHA_DATA_SECRET.*dataSecretFile/) }]);
    expect(check(base('', 'quorum: { allowTwoNodeWithoutWitness: true }')).problems).toEqual([]);
    const data = randomSecret();
    expect(check(base(`dataSecret: ${data}`)).config?.dataSecret).toEqual([data]);
    expect(check(base('dataSecret: ${NHA_DATA_SECRET}'), { NHA_DATA_SECRET: data }).config?.dataSecret).toEqual([data]);
  });

  it('follows the rules of secret: no placeholder, no weak value, not equal to secret or adminToken', () => {
    expect(check(base('dataSecret: change-me-please-0123456789abcdef')).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/placeholder/) }]);
    expect(check(base('dataSecret: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/entropy/) }]);
    expect(check(base(`dataSecret: ${secret}`)).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/same as secret/) }]);
    expect(check(base(`dataSecret: ${token}`)).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/same as adminToken/) }]);
    expect(check(base('dataSecret: ${NHA_DATA_SECRET}')).problems).toEqual([{ key: 'dataSecret', problem: expect.stringMatching(/NHA_DATA_SECRET is not set \(expected a random value.*dataSecretFile/) }]);
  });

  it('is read from dataSecretFile only with mode 0600, and never passed to children', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'nha-datasecret-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const data = randomSecret();
    const good = join(dir, 'data.key');
    writeFileSync(good, `${data}\n`, { mode: 0o600 });
    expect(check(base(`dataSecretFile: ${good}`)).config?.dataSecret).toEqual([data]);
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, `${data}\n`, { mode: 0o644 });
    expect(check(base(`dataSecretFile: ${loose}`)).problems).toEqual([{ key: 'dataSecretFile', problem: expect.stringMatching(/mode 0644; expected mode 0600/) }]);
    expect(check(base(`dataSecret: ${data}\ndataSecretFile: ${good}`)).problems).toEqual([{ key: 'dataSecretFile', problem: expect.stringMatching(/set together with dataSecret/) }]);
    expect(CHILD_ENV_DENY).toContain('NHA_DATA_SECRET');
  });
});
