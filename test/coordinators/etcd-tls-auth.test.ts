/**
 * The etcd coordinator over mutual TLS with password authentication, against a real etcd member
 * (skipped with a message without Debian's etcd-server): certificates from `nimbus-ha certs init`, a user
 * whose role reaches only its cluster's prefix. Grants work there; a wrong password, a prefix outside the
 * role, and a client without a certificate are refused, each within the call's timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3, Range } from 'etcd3';
import { certsInit } from '../../src/cli/certs.js';
import { EtcdCoordinator } from '../../adapters/coordinator/etcd.js';
import { EtcdCluster, etcdMissing } from '../../fixtures/etcd.js';
import { readFileSync } from 'node:fs';

const missing = etcdMissing();
if (missing) console.warn(`etcd TLS and auth tests SKIPPED: ${missing}`);

const PREFIX = '/nimbus-ha/secure/';
const PASSWORD = 'etcd-user-password-for-the-test';

describe.skipIf(missing !== null)('etcd coordinator over TLS with a password', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-ha-etcd-tls-'));
  const certs = join(dir, 'certs');
  let etcd: EtcdCluster;
  const made: EtcdCoordinator[] = [];
  const tls = () => ({ ca: join(certs, 'ca.crt'), cert: join(certs, 'a.crt'), key: join(certs, 'a.key') });

  beforeAll(async () => {
    certsInit({ dir: certs, nodes: ['etcd', 'a'], witness: false });
    etcd = new EtcdCluster(1, { cert: join(certs, 'etcd.crt'), key: join(certs, 'etcd.key'), ca: join(certs, 'ca.crt'), clientCert: join(certs, 'a.crt'), clientKey: join(certs, 'a.key') });
    await etcd.start();
    // The operator's side (docs/etcd.md, Setup): root, a role limited to the prefix, a user, auth on.
    const admin = new Etcd3({ hosts: etcd.endpoints, credentials: { rootCertificate: readFileSync(tls().ca), certChain: readFileSync(tls().cert), privateKey: readFileSync(tls().key) } });
    try {
      await admin.role('root').create();
      await admin.user('root').create('root-password-for-the-test');
      await admin.user('root').addRole('root');
      const role = await admin.role('nimbus-ha-secure').create();
      await role.grant({ permission: 'Readwrite', range: Range.prefix(PREFIX) });
      await admin.user('nha').create(PASSWORD);
      await admin.user('nha').addRole('nimbus-ha-secure');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  });
  afterAll(async () => {
    for (const c of made) c.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const coordinator = async (o: { prefix?: string; password?: string; noClientCert?: boolean } = {}) => {
    const t = tls();
    const c = await EtcdCoordinator.create({
      endpoints: etcd.endpoints,
      prefix: o.prefix ?? PREFIX,
      tls: o.noClientCert ? { ca: t.ca } : t,
      auth: { user: 'nha', password: o.password ?? PASSWORD },
    });
    made.push(c);
    return c;
  };

  it('grants, renews, keeps the record and releases on its prefix', async () => {
    const c = await coordinator();
    expect(c.describe()).toBe(`etcd ${etcd.endpoints[0]} ${PREFIX}`);
    expect(await c.acquire('a', 1, 1000, 3000, undefined, { holderRecord: true })).toMatchObject({ granted: true, epoch: 1, holder: 'a', holders: ['a'] });
    expect(await c.acquire('a', 1, 1000, 3000)).toMatchObject({ granted: true, epoch: 1, holder: 'a' });
    expect(await c.setHolders('a', 1, ['a', 'b'], 3000)).toMatchObject({ granted: true, holders: ['a', 'b'] });
    expect(await c.acquire('b', 2, 1000, 3000)).toMatchObject({ granted: false, reason: 'lease-held', holder: 'a' });
    expect(await c.release('a', 1, 3000)).toMatchObject({ granted: true, holder: null });
    expect(await c.read(3000)).toMatchObject({ epoch: 1, holder: null, holders: ['a', 'b'] });
  });

  it('refuses a wrong password, a prefix outside the role and a client without a certificate, within the timeout', async () => {
    for (const [what, o, why] of [
      ['wrong password', { password: 'not-the-password-at-all' }, /authentication failed/],
      ['prefix outside the role', { prefix: '/nimbus-ha/someone-else/' }, /permission denied/],
      ['no client certificate', { noClientCert: true }, /UNAVAILABLE.*(certificate|SSL)/],
    ] as const) {
      const c = await coordinator(o);
      const t0 = Date.now();
      const err = await c.acquire('a', 1, 1000, 1500).then(() => null, (e: unknown) => e as { code?: string; message?: string });
      expect(err, what).toMatchObject({ code: 'WITNESS_UNREACHABLE', message: expect.stringMatching(why) });
      expect(Date.now() - t0, what).toBeLessThan(2500);
    }
  });
});
