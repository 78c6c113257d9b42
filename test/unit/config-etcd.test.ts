import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdOptions } from '../../src/cli/coordinator.js';
import { check, nodeConfigText } from '../helpers/config-text.js';

const base = (coordinator: string, extra = '') => nodeConfigText(`coordinator: ${coordinator}\n${extra}`);
const dir = mkdtempSync(join(tmpdir(), 'nha-config-etcd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config: coordinator kind etcd', () => {
  it('is a third vote on its own (no witness needed), with its endpoints and prefix', () => {
    const r = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379", "http://10.0.9.2:2379" ], prefix: "/nimbus-ha/prod-a/" }'));
    expect(r.problems).toEqual([]);
    expect(r.config?.coordinator).toEqual({ kind: 'etcd', endpoints: ['http://10.0.9.1:2379', 'http://10.0.9.2:2379'], prefix: '/nimbus-ha/prod-a/' });
    expect(r.config?.witness).toBeUndefined();
  });

  it('refuses a witness besides it, a bad prefix or endpoint, and mixed or clear-text endpoints with tls', () => {
    const both = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/" }', 'witness: { url: "http://127.0.0.1:8790" }'));
    expect(both.problems).toEqual([{ key: 'coordinator', problem: expect.stringMatching(/together with witness/) }]);
    const prefix = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "nimbus-ha" }'));
    expect(prefix.problems.map((p) => p.key)).toEqual(['coordinator.prefix']);
    const endpoint = check(base('{ kind: etcd, endpoints: [ "10.0.9.1:2379" ], prefix: "/nimbus-ha/p/" }'));
    expect(endpoint.problems.map((p) => p.key)).toEqual(['coordinator.endpoints.0']);
    const mixed = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379", "https://10.0.9.2:2379" ], prefix: "/nimbus-ha/p/" }'));
    expect(mixed.problems).toEqual([{ key: 'coordinator.endpoints', problem: expect.stringMatching(/mixes/) }]);
    const ca = join(dir, 'ca.crt');
    writeFileSync(ca, 'not checked here');
    const clear = check(base(`{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", tls: { ca: ${ca}, cert: ${ca} } }`));
    expect(clear.problems.map((p) => p.key).sort()).toEqual(['coordinator.endpoints', 'coordinator.tls']);
    const missingFile = check(base(`{ kind: etcd, endpoints: [ "https://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", tls: { ca: ${join(dir, 'nope.crt')} } }`));
    expect(missingFile.problems).toEqual([{ key: 'coordinator.tls.ca', problem: expect.stringMatching(/cannot read .*ENOENT/) }]);
  });

  it('refuses a request timeout an etcd renewal does not fit in (the lan profile), accepts sub-second leases', () => {
    const lan = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/" }', 'timings: { profile: lan }'));
    expect(lan.problems).toEqual([{ key: 'timings.requestTimeoutMs', problem: expect.stringMatching(/is 80 with coordinator.kind etcd \(expected at least 100/) }]);
    const lanOk = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/" }', 'timings: { profile: lan, requestTimeoutMs: 100, leaseMs: 200, deadAfterMs: 150 }'));
    expect(lanOk.problems).toEqual([]);
  });

  it('takes the password from NHA_ETCD_PASSWORD or a 0600 file, from one place only', () => {
    const env = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", auth: { user: nha } }'), { NHA_ETCD_PASSWORD: 'from-the-environment' });
    expect(env.problems).toEqual([]);
    expect(etcdOptions(env.config!.coordinator!).auth).toEqual({ user: 'nha', password: 'from-the-environment' });
    const none = check(base('{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", auth: { user: nha } }'));
    expect(none.problems).toEqual([{ key: 'coordinator.auth.password', problem: expect.stringMatching(/NHA_ETCD_PASSWORD/) }]);
    const file = join(dir, 'etcd-password');
    writeFileSync(file, 'from-a-file\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    const fromFile = check(base(`{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", auth: { user: nha, passwordFile: ${file} } }`));
    expect(fromFile.problems).toEqual([]);
    expect(etcdOptions(fromFile.config!.coordinator!).auth).toEqual({ user: 'nha', password: 'from-a-file' });
    chmodSync(file, 0o644);
    const loose = check(base(`{ kind: etcd, endpoints: [ "http://10.0.9.1:2379" ], prefix: "/nimbus-ha/p/", auth: { user: nha, passwordFile: ${file} } }`));
    expect(loose.problems).toEqual([{ key: 'coordinator.auth.passwordFile', problem: expect.stringMatching(/mode 0644/) }]);
  });
});
