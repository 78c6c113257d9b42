/**
 * Key lists for rotating the cluster secret, the data secret and the admin token one node at a time:
 * the first key signs, a message signed with any listed key is accepted, a reply is signed with the key
 * its request used, and a key no longer listed is refused. Real HTTP and UDP servers on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KeyUse, keyId, keysOf } from '../../src/peer/keyring.js';
import { signReply, signRequest, verifyHeaders, verifyReply, HEADER } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { UdpClient, UdpServer } from '../../src/peer/udp.js';
import { HaError } from '../../src/errors.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { witnessSecret } from '../../src/cli/witness.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heartbeat, randomSecret, startApi } from './helpers.js';

const OLD = randomSecret();
const NEW = randomSecret();
const OTHER = randomSecret();

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('key lists', () => {
  it('a string is one key exactly as given (newlines too); key ids are stable 8-hex names that never show the key', () => {
    // openssl rand -base64 64 wraps its output: still one key.
    expect(keysOf(`${NEW}\n${OLD}`)).toEqual([`${NEW}\n${OLD}`]);
    expect(keysOf([OLD])).toEqual([OLD]);
    expect(() => keysOf([])).toThrow();
    expect(keyId(NEW)).toMatch(/^[0-9a-f]{8}$/);
    expect(keyId(NEW)).toBe(keyId(NEW));
    expect(keyId(NEW)).not.toBe(keyId(OLD));
    expect(NEW).not.toContain(keyId(NEW));
  });

  it('a request signed with the first key verifies against any list holding it, and names the key it used', () => {
    const h = signRequest([NEW, OLD], 'a', 'POST', '/peer/heartbeat', '{}');
    const both = verifyHeaders([OLD, NEW], h, 'POST', '/peer/heartbeat');
    expect(both.ok && both.key).toBe(NEW);
    expect(verifyHeaders([NEW], h, 'POST', '/peer/heartbeat').ok).toBe(true);
    const old = verifyHeaders([OLD], h, 'POST', '/peer/heartbeat');
    expect(old.ok).toBe(false);
    expect(!old.ok && old.reason).toMatch(/bad signature/);
    // A string is one key: newlines do not make a list.
    expect(verifyHeaders(`${OTHER}\n${NEW}`, h, 'POST', '/peer/heartbeat').ok).toBe(false);
  });

  it('a reply signed with any listed key verifies; one signed with a dropped key does not', () => {
    const nonce = 'n'.repeat(24);
    const r = signReply(OLD, 'b', nonce, 200, '{"ok":true}');
    const headers = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v]));
    expect(verifyReply([NEW, OLD], headers, nonce, 200, Buffer.from('{"ok":true}'))).toBeNull();
    expect(verifyReply([NEW], headers, nonce, 200, Buffer.from('{"ok":true}'))).toMatch(/bad reply signature/);
    expect(headers[HEADER.replySignature]).toBeTruthy();
  });

  it('KeyUse reports the signing key, the accepted ones and which key each peer used last', () => {
    const u = new KeyUse(keysOf([NEW, OLD]));
    u.used('a', OLD, 1000);
    u.used('a', NEW, 1500);
    const s = u.status();
    expect(s.signingKey).toBe(keyId(NEW));
    expect(s.acceptedKeys).toEqual([keyId(NEW), keyId(OLD)]);
    expect(s.peers.a.keyId).toBe(keyId(NEW));
    expect(JSON.stringify(s)).not.toContain(NEW);
  });
});

describe('config: secret, dataSecret and adminToken as lists', () => {
  const DATA = randomSecret();
  const TOKEN = randomSecret();
  const base = (secret: string, extra = '') => `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${secret}
dataSecret: ${DATA}
adminToken: ${TOKEN}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]
witness: { url: "http://127.0.0.1:8790" }
${extra}`;
  const check = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfigText(text, clusterConfigSchema, { env, crossChecks: [clusterCrossChecks] });

  it('takes one key, a YAML list (with variables), or a list of secret files; a value with newlines stays one key', () => {
    expect(check(base(NEW)).config?.secret).toEqual([NEW]);
    expect(check(base(`[ ${NEW}, ${OLD} ]`)).config?.secret).toEqual([NEW, OLD]);
    const fromEnv = check(base('[ "${NHA_SECRET_NEW}", "${NHA_SECRET_OLD}" ]'), { NHA_SECRET_NEW: NEW, NHA_SECRET_OLD: OLD });
    expect(fromEnv.problems).toEqual([]);
    expect(fromEnv.config?.secret).toEqual([NEW, OLD]);
    const wrapped = `${NEW}\n${OLD}`;
    expect(check(base('${NHA_SECRET}'), { NHA_SECRET: wrapped }).config?.secret).toEqual([wrapped]);
    const dir = mkdtempSync(join(tmpdir(), 'nha-keys-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const f1 = join(dir, 'new.key');
    const f2 = join(dir, 'old.key');
    writeFileSync(f1, `${NEW}\n`, { mode: 0o600 });
    writeFileSync(f2, wrapped, { mode: 0o600 });
    const files = check(base(NEW).replace(`secret: ${NEW}`, `secretFile: [ ${f1}, ${f2} ]`));
    expect(files.problems).toEqual([]);
    expect(files.config?.secret).toEqual([NEW, wrapped]);
  });

  it('names the key and the entry of a list that is wrong', () => {
    const weak = check(base(`[ ${NEW}, "changeme" ]`));
    expect(weak.config).toBeUndefined();
    expect(weak.problems.find((p) => p.key === 'secret')?.problem).toMatch(/^key 2 of 2 .*\(expected .+\)$/);
    const empty = check(base(`[ "", ${NEW} ]`));
    expect(empty.problems.find((p) => p.key === 'secret')?.problem).toMatch(/^key 1 of 2 is empty/);
    const wrongType = check(base(`[ 123, ${NEW} ]`));
    expect(wrongType.problems.find((p) => p.key === 'secret')?.problem).toMatch(/wrong type .*\(expected a string, or a list of strings while rotating\)$/);
    const twice = check(base(`[ ${NEW}, ${NEW} ]`));
    expect(twice.problems.find((p) => p.key === 'secret')?.problem).toMatch(/the same key twice/);
    const many = check(base(`[ ${[1, 2, 3, 4, 5].map(() => randomSecret()).join(', ')} ]`));
    expect(many.problems.find((p) => p.key === 'secret')?.problem).toMatch(/at most 4/);
    // A key may not serve two purposes, even as the old key of a list.
    const shared = check(base(`[ ${NEW}, ${TOKEN} ]`));
    expect(shared.problems.find((p) => p.key === 'adminToken')?.problem).toMatch(/same as secret/);
  });

  it('the witness takes one key from NHA_SECRET, or one per --secret-file, and checks each', () => {
    expect(witnessSecret([], `${NEW}\n${OLD}`)).toEqual([`${NEW}\n${OLD}`]);
    const dir = mkdtempSync(join(tmpdir(), 'nha-wkeys-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const f = (name: string, v: string) => {
      const p = join(dir, name);
      writeFileSync(p, v, { mode: 0o600 });
      return p;
    };
    expect(witnessSecret([f('n', NEW), f('o', OLD)], undefined)).toEqual([NEW, OLD]);
    expect(() => witnessSecret([f('n2', NEW), f('w', 'changeme')], undefined)).toThrow(/key 2 of 2/);
    expect(() => witnessSecret([f('n3', NEW), f('n4', NEW)], undefined)).toThrow(/same key twice/);
  });
});

describe('a pair in the middle of a rotation (real servers on loopback)', () => {
  it('HTTP: a node signing with the new key is accepted by one that still signs with the old; replies verify both ways; a dropped key is refused with 401', async () => {
    const keyUse = new KeyUse(keysOf([OLD, NEW]));
    const api = await startApi({ secret: [OLD, NEW], keyUse: { lease: keyUse, data: null } });
    cleanups.push(() => api.close());
    const ahead = new PeerClient('a', [NEW, OLD]);
    await expect(ahead.post(api.url, '/peer/heartbeat', heartbeat('a'), 2000)).resolves.toMatchObject({ ack: true });
    expect(keyUse.status().peers.a.keyId).toBe(keyId(NEW));
    // A node that dropped the old key accepts only replies signed with the new one: the server answers
    // with the key the request used, not with its own first key.
    const onlyNew = new PeerClient('a', [NEW]);
    await expect(onlyNew.post(api.url, '/peer/heartbeat', heartbeat('a', { sentAt: Date.now() + 1 }), 2000)).resolves.toMatchObject({ ack: true });
    const behind = new PeerClient('a', [OLD]);
    await expect(behind.post(api.url, '/peer/heartbeat', heartbeat('a', { sentAt: Date.now() + 2 }), 2000)).resolves.toMatchObject({ ack: true });
    expect(keyUse.status().peers.a.keyId).toBe(keyId(OLD));
    const stranger = new PeerClient('a', [OTHER]);
    const err = await stranger.post(api.url, '/peer/heartbeat', heartbeat('a', { sentAt: Date.now() + 3 }), 2000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('PEER_AUTH_FAILED');
    expect(api.calls.filter((c) => c.kind === 'heartbeat')).toHaveLength(3);
    // Key ids are for admins (GET /admin/keys); the open /status shows none.
    expect(JSON.stringify(await (await fetch(`${api.url}/status`)).json())).not.toContain(keyId(OLD));
    expect((await fetch(`${api.url}/admin/keys`)).status).toBe(401);
    const k = await (await fetch(`${api.url}/admin/keys`, { headers: { authorization: `Bearer ${api.adminToken}` } })).json();
    expect(k.lease.acceptedKeys).toEqual([keyId(OLD), keyId(NEW)]);
    expect(JSON.stringify(k)).not.toContain(OLD);
  });

  it('HTTP: every listed admin token is accepted, any other gets 401 and changes nothing', async () => {
    const T1 = randomSecret();
    const T2 = randomSecret();
    const api = await startApi({ adminToken: [T1, T2] });
    cleanups.push(() => api.close());
    const post = (token: string) => fetch(`${api.url}/admin/maintenance`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ on: true }) });
    expect((await post(OTHER)).status).toBe(401);
    expect(api.calls).toHaveLength(0);
    expect((await post(T2)).status).toBeLessThan(300);
    expect((await post(T1)).status).toBeLessThan(300);
    expect(api.calls.filter((c) => c.kind === 'maintenance')).toHaveLength(2);
  });

  it('UDP: the same, and the reply is signed with the key the request used', async () => {
    const keyUse = new KeyUse(keysOf([OLD, NEW]));
    const rejects: string[] = [];
    const server = new UdpServer('b', [OLD, NEW], { '/peer/heartbeat': () => ({ status: 200, body: { ack: true } }) }, (r) => rejects.push(r), undefined, keyUse);
    const port = await server.listen('127.0.0.1', 0);
    cleanups.push(() => server.close());
    const url = `udp://127.0.0.1:${port}`;
    // Accepts only replies signed with NEW: the server must answer with the key the request used.
    const onlyNew = new UdpClient('a', [NEW]);
    cleanups.push(() => onlyNew.close());
    await expect(onlyNew.post(url, '/peer/heartbeat', {}, 1000)).resolves.toEqual({ ack: true });
    expect(keyUse.status().peers.a.keyId).toBe(keyId(NEW));
    const stranger = new UdpClient('a', [OTHER]);
    cleanups.push(() => stranger.close());
    const err = await stranger.post(url, '/peer/heartbeat', {}, 500).catch((e: unknown) => e);
    expect((err as HaError).code).toBe('PEER_AUTH_FAILED');
    expect(rejects.join(' ')).toMatch(/bad signature/);
  });
});
