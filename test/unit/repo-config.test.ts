import { describe, expect, it } from 'vitest';
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
