import { describe, expect, it } from 'vitest';
import { listPage } from '../../fixtures/cumulus/listing.js';
import { configFromKeys, parseKeyValue, type VmServiceConfig } from '../../fixtures/nimbus-vm-service/config.js';
import { instanceTypeParam } from '../../fixtures/nimbus-vm-service/context.js';
import { ec2ImportFingerprint, parseImportedKeyMaterial, parseOpenSshPublicKey } from '../../fixtures/nimbus-vm-service/keys.js';
import { allocate, formatPrice, parsePrice, spotPrice, type SpotDemand } from '../../fixtures/nimbus-vm-service/spot-pricing.js';

// Made with ssh-keygen; the expected fingerprints printed by
//   ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c   (RSA, as EC2)
//   ssh-keygen -lf e.pub                                                                  (ED25519, SHA256)
const RSA =
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDKv+9xtLxsWzKzumoQY/0I/acrpuM7iEndn8ohJexs0px8VNmQQx4U+r6QDRWC9Qm4FuvJW33sVXSDXCtcMEwmzN/BREOJPWWTlqbDR05tzehvnO2p8YBhMvTUrYT+QUKT+431YL9Phg948UxFmZTI4UNI6CFdTSmByLmiwXEuzw== vec';
const RSA_EC2 = '93:87:a9:4c:d4:40:ba:11:5d:a0:0c:14:43:54:a0:79';
const RSA_OPENSSH_MD5 = '5b:28:5f:7e:3d:e6:8d:e7:c7:25:05:ef:ee:bf:f2:dc';
const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1OYBLXQqQ31Q9qrGB3MKa6vcJh8jHW6+vH87e5pIXa vec';
const ED25519_SHA256 = 'e80H4AF4Cl7nbnfh9bZNcqz888Hp7XRxTwRJVuH0bH8=';

describe('ImportKeyPair fingerprints (as EC2 gives them)', () => {
  it('RSA: MD5 of the DER public key, colon-separated, not the OpenSSH MD5', () => {
    const k = parseOpenSshPublicKey(RSA);
    expect(ec2ImportFingerprint(k)).toBe(RSA_EC2);
    expect(ec2ImportFingerprint(k)).not.toBe(RSA_OPENSSH_MD5);
  });

  it('ED25519: SHA-256 of the key, base64', () => {
    expect(ec2ImportFingerprint(parseOpenSshPublicKey(ED25519))).toBe(ED25519_SHA256);
  });

  it('reads the material base64-encoded (the API), as the key line (old tools) and as base64 DER', () => {
    const viaApi = parseImportedKeyMaterial(Buffer.from(RSA).toString('base64'));
    expect(ec2ImportFingerprint(viaApi)).toBe(RSA_EC2);
    expect(ec2ImportFingerprint(parseImportedKeyMaterial(RSA))).toBe(RSA_EC2);
    const der = viaApi.key.export({ type: 'spki', format: 'der' }).toString('base64');
    expect(ec2ImportFingerprint(parseImportedKeyMaterial(der))).toBe(RSA_EC2);
  });

  it('refuses what is not a key with InvalidKeyPair.Format', () => {
    for (const bad of ['not a key', 'ssh-rsa AAAA', 'ssh-dss AAAAB3NzaC1kc3MAAACBAP', RSA.replace('ssh-rsa', 'ssh-ed25519')]) {
      expect(() => parseImportedKeyMaterial(Buffer.from(bad).toString('base64')), bad).toThrow(expect.objectContaining({ code: 'InvalidKeyPair.Format' }));
    }
  });
});

const d = (id: string, bid: number, createdAtMs: number, needed = 1): SpotDemand => ({ id, bid, needed, createdAtMs });

describe('spot price (Nimbus maximize-utilization model)', () => {
  it('is the minimum price without requests, or while spare capacity is not exhausted', () => {
    expect(spotPrice(4, [], 0.1)).toBe(0.1);
    expect(spotPrice(4, [d('a', 0.5, 1), d('b', 0.3, 2)], 0.1)).toBe(0.1);
  });

  it('is the bid of the request that exhausts spare capacity', () => {
    expect(spotPrice(2, [d('a', 0.5, 1), d('b', 0.5, 2)], 0.1)).toBe(0.5);
    expect(spotPrice(2, [d('a', 0.5, 1), d('b', 0.5, 2), d('c', 0.3, 3)], 0.1)).toBe(0.5);
    expect(spotPrice(3, [d('a', 0.5, 1), d('b', 0.9, 2), d('c', 0.3, 3)], 0.1)).toBe(0.3);
    expect(spotPrice(2, [d('a', 0.5, 1, 3)], 0.1)).toBe(0.5);
  });

  it('is the highest bid plus 0.1 when there is no spare capacity; bids below the minimum do not count', () => {
    expect(spotPrice(0, [d('a', 0.5, 1), d('b', 0.7, 2)], 0.1)).toBe(0.8);
    expect(spotPrice(1, [d('a', 0.05, 1), d('b', 0.05, 2)], 0.1)).toBe(0.1);
    expect(spotPrice(3, [d('a', 0.5, 1, 0)], 0.1)).toBe(0.1); // a request that needs nothing more
  });

  it('allocates from the highest bid down, older first among equal bids, nothing below the price', () => {
    const demands = [d('a1', 0.5, 1), d('a2', 0.5, 2), d('b1', 0.3, 3), d('b2', 0.9, 4)];
    const price = spotPrice(2, demands, 0.1);
    expect(price).toBe(0.5);
    expect(Object.fromEntries(allocate(2, demands, price))).toEqual({ b2: 1, a1: 1, a2: 0, b1: 0 });
    expect(Object.fromEntries(allocate(0, demands, spotPrice(0, demands, 0.1)))).toEqual({ b2: 0, a1: 0, a2: 0, b1: 0 });
  });

  it('reads and shows prices as EC2 does', () => {
    expect(parsePrice('0.5')).toBe(0.5);
    expect(parsePrice('.25')).toBe(0.25);
    for (const bad of ['0', '-1', 'abc', '1e3', '']) expect(parsePrice(bad), bad).toBeNull();
    expect(formatPrice(0.1)).toBe('0.100000');
  });
});

describe('instance types', () => {
  const minimal = 'db.url=postgres://u:p@127.0.0.1:5432/d\ncumulus.access_id=A\ncumulus.secret=S\n';
  const ctx = (config: VmServiceConfig, params: Record<string, string>) => ({ config, params: new Map(Object.entries(params)) });

  it('defaults to Nimbus m1.small, m1.large, m1.xlarge; m1.small when not named', () => {
    const c = configFromKeys(parseKeyValue(minimal, 'f'), []);
    expect(c.instanceTypes).toEqual(['m1.small', 'm1.large', 'm1.xlarge']);
    expect(instanceTypeParam(ctx(c, {}), 'InstanceType')).toBe('m1.small');
    expect(instanceTypeParam(ctx(c, { InstanceType: 'm1.xlarge' }), 'InstanceType')).toBe('m1.xlarge');
  });

  it('refuses a type the cloud does not offer, naming the value and the offered types', () => {
    const c = configFromKeys(parseKeyValue(`${minimal}vm.instance_types=m1.small, c1.medium\n`, 'f'), []);
    expect(() => instanceTypeParam(ctx(c, { InstanceType: 't9.huge' }), 'InstanceType')).toThrow(
      expect.objectContaining({ code: 'InvalidParameterValue', message: "Invalid value 't9.huge' for InstanceType. This cloud offers: m1.small, c1.medium" }),
    );
  });

  it('checks the spot instance type against the configured types', () => {
    expect(() => configFromKeys(parseKeyValue(`${minimal}vm.instance_types=m1.large\n`, 'nimbus.conf'), [])).toThrow(/spot\.instance_type: m1\.small is not one of vm\.instance_types \(m1\.large\)/);
    expect(() => configFromKeys(parseKeyValue(`${minimal}vm.instance_types=m1.large,,\n`, 'nimbus.conf'), [])).toThrow(/vm\.instance_types/);
  });
});

describe('Cumulus listing with a delimiter', () => {
  const keys = ['VMS/u1/img', 'VMS/common/base', 'VMS/common/other', 'README', 'VMS-notes', 'a/b/c'];
  const page = (o: Partial<Parameters<typeof listPage>[1]>) => listPage(keys, { prefix: '', delimiter: '', after: '', maxKeys: 1000, ...o });
  const names = (p: ReturnType<typeof listPage>) => p.entries.map((e) => (e.kind === 'key' ? e.key : `${e.prefix} (prefix)`));

  it('rolls keys below the delimiter up into common prefixes, in byte order with the keys', () => {
    expect(names(page({ delimiter: '/' }))).toEqual(['README', 'VMS-notes', 'VMS/ (prefix)', 'a/ (prefix)']);
    expect(names(page({ delimiter: '/', prefix: 'VMS/' }))).toEqual(['VMS/common/ (prefix)', 'VMS/u1/ (prefix)']);
    expect(names(page({}))).toEqual(['README', 'VMS-notes', 'VMS/common/base', 'VMS/common/other', 'VMS/u1/img', 'a/b/c']);
  });

  it('counts keys and prefixes against MaxKeys and continues after the last entry, a prefix included', () => {
    const first = page({ delimiter: '/', maxKeys: 3 });
    expect(names(first)).toEqual(['README', 'VMS-notes', 'VMS/ (prefix)']);
    expect(first).toMatchObject({ isTruncated: true, nextAfter: 'VMS/' });
    const second = page({ delimiter: '/', maxKeys: 3, after: first.nextAfter });
    expect(names(second)).toEqual(['a/ (prefix)']);
    expect(second.isTruncated).toBe(false);
  });
});
