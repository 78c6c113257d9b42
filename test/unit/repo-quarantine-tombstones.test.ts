/**
 * The merge plan of a rejoin's quarantined objects with the primary's tombstones: a key the primary
 * lacks because it deleted it after the quarantined copy was written stays in quarantine; a key it
 * deleted before the copy was written, or never deleted, is merged; a key it holds again follows the
 * conflict rules whatever its tombstone says. The copy's write time is the one recorded when it was moved
 * aside (nha-written-at), else its own Last-Modified.
 */
import { describe, expect, it } from 'vitest';
import { planQuarantine, writtenAtOf, WRITTEN_AT_META, type QuarantinedObject } from '../../src/replication/repo/quarantine.js';

const Q = (key: string, o: Partial<QuarantinedObject> = {}): QuarantinedObject => ({ key: `nha-quarantine/ev1/${key}`, etag: 'e-mine', mtimeMs: 5_000, ...o });

type Verdict = 'merge' | 'same' | 'conflict' | 'deletedOnPrimary';

const cases: Array<{ name: string; obj: QuarantinedObject; bucket?: string; tombstone?: number; want: Verdict }> = [
  { name: 'primary lacks it, no tombstone: merged', obj: Q('a.img', { writtenMs: 1_000 }), want: 'merge' },
  { name: 'deleted on the primary after the copy was written: stays in quarantine', obj: Q('a.img', { writtenMs: 1_000 }), tombstone: 2_000, want: 'deletedOnPrimary' },
  { name: 'deleted on the primary before the copy was written: merged', obj: Q('a.img', { writtenMs: 3_000 }), tombstone: 2_000, want: 'merge' },
  { name: 'deleted in the same millisecond as written: merged (the write wins a tie)', obj: Q('a.img', { writtenMs: 2_000 }), tombstone: 2_000, want: 'merge' },
  {
    name: 'no recorded write time: the copy’s Last-Modified (when moved aside) stands for it, later than the delete: merged',
    obj: Q('a.img', { mtimeMs: 5_000 }),
    tombstone: 2_000,
    want: 'merge',
  },
  { name: 'no recorded write time, deleted after the copy was made: stays', obj: Q('a.img', { mtimeMs: 5_000 }), tombstone: 6_000, want: 'deletedOnPrimary' },
  { name: 'written again on the primary after its delete, same content: same', obj: Q('a.img', { writtenMs: 1_000 }), bucket: 'e-mine', tombstone: 2_000, want: 'same' },
  { name: 'written again on the primary after its delete, other content: conflict', obj: Q('a.img', { writtenMs: 1_000 }), bucket: 'e-other', tombstone: 2_000, want: 'conflict' },
];

describe('planQuarantine with the primary’s tombstones', () => {
  for (const c of cases) {
    it(c.name, () => {
      const to = c.obj.key.slice('nha-quarantine/ev1/'.length);
      const bucket = new Map(c.bucket ? [[to, c.bucket]] : []);
      const tombstones = new Map(c.tombstone === undefined ? [] : [[to, { atMs: c.tombstone }]]);
      const plan = planQuarantine([c.obj], bucket, { keepDays: 0, nowMs: 10_000, tombstones });
      const got: Verdict[] = [];
      if (plan.merge.length) got.push('merge');
      if (plan.same.length) got.push('same');
      if (plan.conflicts.length) got.push('conflict');
      if (plan.deletedOnPrimary.length) got.push('deletedOnPrimary');
      expect(got).toEqual([c.want]);
      if (c.want === 'deletedOnPrimary') expect(plan.deletedOnPrimary[0]).toEqual({ from: c.obj.key, to, deletedAtMs: c.tombstone, writtenMs: c.obj.writtenMs ?? c.obj.mtimeMs });
    });
  }

  it('without tombstones (the CLI, a merge by hand) everything the bucket lacks is merged', () => {
    const plan = planQuarantine([Q('a.img', { writtenMs: 1 })], new Map(), { keepDays: 0, nowMs: 10_000 });
    expect(plan.merge).toEqual([{ from: 'nha-quarantine/ev1/a.img', to: 'a.img' }]);
    expect(plan.deletedOnPrimary).toEqual([]);
  });

  it('reads the recorded write time from the metadata', () => {
    expect(writtenAtOf({ [WRITTEN_AT_META]: '1234' })).toBe(1234);
    expect(writtenAtOf({ [WRITTEN_AT_META]: 'x' })).toBeUndefined();
    expect(writtenAtOf({})).toBeUndefined();
    expect(writtenAtOf(undefined)).toBeUndefined();
  });
});
