import { describe, expect, it } from 'vitest';
import { filesConfigSchema } from '../../src/replication/files/config.js';

describe('filesConfigSchema', () => {
  it('fills defaults', () => {
    expect(filesConfigSchema.parse({})).toEqual({
      trees: [],
      batchMs: 200,
      maxBatchMs: 500,
      fullPassIntervalMs: 300_000,
      largeFileBytes: 1024 * 1024,
      quarantineRetentionDays: 14,
      maxDeleteFraction: 0.1,
      deletesAlwaysAllowed: 10,
      maxDeletesPerWindow: 100,
      deleteWindowMs: 600_000,
      allowEmptySource: false,
    });
    expect(filesConfigSchema.parse({ trees: [{ name: 'etc', path: '/etc/nimbus' }] }).trees[0].exclude).toEqual([]);
  });

  it.each([
    [{ bogus: 1 }, ''],
    [{ trees: [{ name: 'etc', path: 'relative' }] }, 'trees.0.path'],
    [{ trees: [{ name: 'a b', path: '/x' }] }, 'trees.0.name'],
    [{ trees: [{ name: '..', path: '/x' }] }, 'trees.0.name'],
    [{ trees: [{ name: 'x', path: '/x', extra: true }] }, 'trees.0'],
    [{ trees: [{ name: 'x', path: '/a' }, { name: 'x', path: '/b' }] }, 'trees.1.name'],
    [{ trees: [{ name: 'x', path: '/a' }, { name: 'y', path: '/a/b' }] }, 'trees.1.path'],
    [{ batchMs: 600, maxBatchMs: 500 }, 'maxBatchMs'],
    [{ trees: [{ name: 'x', path: '/a' }], quarantineDir: '/a/q' }, 'quarantineDir'],
    [{ quarantineDir: 'q' }, 'quarantineDir'],
    [{ maxDeleteFraction: 1.5 }, 'maxDeleteFraction'],
    [{ deleteWindowMs: 10 }, 'deleteWindowMs'],
    [{ largeFileBytes: 10 }, 'largeFileBytes'],
  ])('rejects %j at %s', (input, path) => {
    const r = filesConfigSchema.safeParse(input);
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('describes every field', () => {
    const shape = filesConfigSchema._def.schema.shape;
    for (const [k, v] of Object.entries(shape)) expect(v.description, k).toBeTruthy();
  });
});
