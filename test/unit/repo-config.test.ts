import { describe, expect, it } from 'vitest';
import type { S3Store } from '../../adapters/cumulus/s3-store.js';
import { makeStore } from '../../src/cli/node.js';
import { repoConfigSchema } from '../../src/replication/repo/config.js';

const store = { endpoint: 'http://127.0.0.1:8888', accessKeyId: 'k', secretAccessKey: 's' };

describe('repoConfigSchema', () => {
  it('fills defaults', () => {
    const c = repoConfigSchema.parse({ local: store, peer: { ...store, endpoint: 'http://10.0.0.2:8888' } });
    expect(c).toMatchObject({ intervalMs: 1000, concurrency: 8, maxDeleteFraction: 0.1, conflictPolicy: 'quarantine', deepVerifyCron: '17 3 * * *' });
    expect(c.local).toMatchObject({ bucket: 'Repo', signatureVersion: 'v4', multipart: true, forcePathStyle: true });
  });

  it.each([
    ['unknown key', { local: store, peer: store, intervl: 5 }, /Unrecognized key/],
    ['peer missing while enabled', { local: store }, /repo.peer is required/],
    ['v2 without credentials', { local: { endpoint: 'http://h:1', signatureVersion: 'v2' }, peer: store }, /needs accessKeyId/],
    ['bad cron', { local: store, peer: store, deepVerifyCron: 'every day' }, /cron/],
    ['fraction above 1', { local: store, peer: store, maxDeleteFraction: 2 }, /less than or equal to 1/],
    ['part size below 5 MiB', { local: { ...store, partSize: 1024 }, peer: store }, /greater than or equal to 5242880/],
  ])('rejects %s', (_n, input, msg) => {
    const r = repoConfigSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(msg);
  });

  it('allows a disabled section without a peer', () => {
    expect(repoConfigSchema.safeParse({ enabled: false, local: store }).success).toBe(true);
  });
});

describe('store built from the config (makeStore)', () => {
  const MiB = 1024 * 1024;
  const layout = async (local: Record<string, unknown>) => {
    const c = repoConfigSchema.parse({ local: { ...store, ...local }, peer: store });
    const s = (await makeStore(c.local)) as S3Store;
    s.close();
    return s;
  };

  it('sends objects up to multipartThreshold in one PUT and larger ones in parts of partSize', async () => {
    const s = await layout({});
    expect(s.uploadPartSize(128 * MiB)).toBeNull();
    expect(s.uploadPartSize(128 * MiB + 1)).toBe(5 * MiB);
    const t = await layout({ multipartThreshold: 16 * MiB, partSize: 8 * MiB });
    expect(t.uploadPartSize(16 * MiB)).toBeNull();
    expect(t.uploadPartSize(17 * MiB)).toBe(8 * MiB);
  });

  it('grows the part size so that no object needs more than 10,000 parts', async () => {
    const s = await layout({});
    for (const size of [48 * 1024 * MiB, 100 * 1024 * MiB, 5 * 1024 * 1024 * MiB]) {
      const part = s.uploadPartSize(size)!;
      expect(part % MiB).toBe(0);
      expect(Math.ceil(size / part)).toBeLessThanOrEqual(10_000);
      expect(part).toBeGreaterThanOrEqual(5 * MiB);
    }
    expect(s.uploadPartSize(100 * 1024 * MiB)).toBe(11 * MiB);
  });

  it('never uses parts without multipart (Cumulus)', async () => {
    const s = await layout({ multipart: false });
    expect(s.uploadPartSize(10 * 1024 * MiB)).toBeNull();
  });
});
