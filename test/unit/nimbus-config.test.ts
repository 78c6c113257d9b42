import { describe, expect, it } from 'vitest';
import { nimbusConfigSchema } from '../../src/config/nimbus.js';
import { nimbusStateLayout } from '../../adapters/nimbus/state-layout.js';
import { configFromKeys, parseKeyValue, parseNetworkPool } from '../../fixtures/nimbus-vm-service/config.js';

describe('nimbus.conf parsing', () => {
  const minimal = 'db.url=postgres://u:p@127.0.0.1:5432/d\ncumulus.access_id=A\ncumulus.secret=S\n';

  it('fills defaults (port 8444, bucket Repo, zones)', () => {
    const c = configFromKeys(parseKeyValue(`# comment\n\n${minimal}ec2.zones=a, b\nvm.pending_ms=5\n`, 'f'), []);
    expect(c).toMatchObject({ port: 8444, zones: ['a', 'b'], cumulus: { bucket: 'Repo', url: 'http://127.0.0.1:8888' } });
    expect(c.timers).toEqual({ pendingMs: 5, rebootMs: 3000, shutdownMs: 3000 });
  });

  it('reports every problem at once, unknown keys included', () => {
    const attempt = () => configFromKeys(parseKeyValue('ec2.port=x\nvm.colour=blue\n', 'nimbus.conf'), []);
    expect(attempt).toThrow(/db\.url/);
    expect(attempt).toThrow(/ec2\.port/);
    expect(attempt).toThrow(/unknown key\(s\) vm\.colour/);
  });

  it('rejects malformed and duplicate lines with their line numbers', () => {
    expect(() => parseKeyValue('a=1\nnonsense\na=2\n', 'f')).toThrow(/f:2: expected key=value[\s\S]*f:3: duplicate key a/);
  });

  it('reads network pools: DNS first, then hostname ip gateway broadcast netmask [mac]', () => {
    const pool = parseNetworkPool('public', '# dns\n10.0.0.53\nvm1 10.0.0.11 10.0.0.1 10.0.0.255 255.255.255.0\nvm2 10.0.0.12 10.0.0.1 10.0.0.255 255.255.255.0 AA:BB\n');
    expect(pool.dns).toBe('10.0.0.53');
    expect(pool.entries.map((e) => [e.hostname, e.ip, e.mac])).toEqual([['vm1', '10.0.0.11', undefined], ['vm2', '10.0.0.12', 'AA:BB']]);
    expect(() => parseNetworkPool('bad', 'dns\nvm1 10.0.0.1\n')).toThrow(/bad, entry 1/);
  });
});

describe('nimbusConfigSchema', () => {
  const ec2 = { url: 'http://127.0.0.1:8444/', credentials: { accessKeyId: 'a', secretAccessKey: 's' } };

  it('requires a command in process mode and refuses one in nimbusctl mode', () => {
    expect(nimbusConfigSchema.safeParse({ mode: 'process', home: '/n', ec2 }).success).toBe(false);
    expect(nimbusConfigSchema.safeParse({ mode: 'nimbusctl', home: '/n', ec2, command: ['x'] }).success).toBe(false);
    const ok = nimbusConfigSchema.parse({ mode: 'nimbusctl', home: '/n', ec2, cumulus: { url: 'http://127.0.0.1:8888' } });
    expect(ok).toMatchObject({ nimbusctlTarget: 'services', stopTimeoutMs: 10_000, cumulus: { bucket: 'Repo' } });
  });

  it('rejects unknown keys', () => {
    expect(nimbusConfigSchema.safeParse({ mode: 'nimbusctl', home: '/n', ec2, colour: 1 }).success).toBe(false);
  });
});

describe('nimbusStateLayout', () => {
  it('lists config and certificates as file sync, the repository via S3, embedded databases as quiesced copies', () => {
    const layout = nimbusStateLayout('/opt/nimbus');
    const byPath = Object.fromEntries(layout.map((i) => [i.relative, i]));
    expect(byPath['services/etc/nimbus']).toMatchObject({ sync: 'file-sync', path: '/opt/nimbus/services/etc/nimbus' });
    expect(byPath['var']).toMatchObject({ kind: 'certificates', sync: 'file-sync' });
    expect(byPath['cumulus/posixdata']).toMatchObject({ sync: 'object-store' });
    expect(byPath['services/var/nimbus']).toMatchObject({ sync: 'quiesced-copy', quiesce: 'services' });
    expect(byPath['cumulus/etc/authz.db']).toMatchObject({ sync: 'quiesced-copy', quiesce: 'cumulus' });
    // The live-synced Cumulus config tree must not ship the database file the quiesced item owns.
    expect(byPath['cumulus/etc'].exclude).toContain('*.db');
  });
});
