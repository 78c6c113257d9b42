import { describe, expect, it } from 'vitest';
import { compareObjects, diffListings, isMultipartEtag, type Verdict } from '../../src/replication/repo/diff.js';
import { deleteGuard, splitRecent } from '../../src/replication/repo/engine.js';
import type { ObjectInfo } from '../../src/ports.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const M1 = 'c'.repeat(32) + '-3';
const M2 = 'd'.repeat(32) + '-2';

function o(key: string, size: number, etag: string, metadata?: Record<string, string>): ObjectInfo {
  return { key, size, etag, mtimeMs: 0, ...(metadata ? { metadata } : {}) };
}

describe('compareObjects', () => {
  const rows: Array<[string, ObjectInfo, ObjectInfo, Verdict]> = [
    ['same size and ETag', o('k', 10, A), o('k', 10, A), 'same'],
    ['size differs', o('k', 10, A), o('k', 11, A), 'different'],
    ['plain ETags differ', o('k', 10, A), o('k', 10, B), 'different'],
    ['plain ETags differ even if stored ETag matches', o('k', 10, A), o('k', 10, B, { 'nha-source-etag': A }), 'different'],
    ['target multipart, no metadata yet', o('k', 10, A), o('k', 10, M1), 'unknown'],
    ['target multipart, stored ETag matches', o('k', 10, A), o('k', 10, M1, { 'nha-source-etag': A }), 'same'],
    ['target multipart, stored ETag stale', o('k', 10, A), o('k', 10, M1, { 'nha-source-etag': B }), 'different'],
    ['target multipart, no stored ETag', o('k', 10, A), o('k', 10, M1, {}), 'different'],
    ['source multipart, target single PUT with stored ETag', o('k', 10, M1), o('k', 10, A, { 'nha-source-etag': M1 }), 'same'],
    ['both multipart with different part sizes', o('k', 10, M1), o('k', 10, M2, { 'nha-source-etag': M1 }), 'same'],
    ['both multipart, equal', o('k', 10, M1), o('k', 10, M1), 'same'],
    // A store killed mid-write lists the object with an empty ETag: the stored source ETag decides.
    ['source ETag empty, copy not yet inspected', o('k', 10, ''), o('k', 10, A), 'unknown'],
    ['source ETag empty, copy made of it', o('k', 10, ''), o('k', 10, A, { 'nha-source-etag': 'none' }), 'same'],
    ['source ETag empty, target from an earlier upload', o('k', 10, ''), o('k', 10, A, {}), 'different'],
    ['source sound again, copy of the torn one', o('k', 10, B), o('k', 10, A, { 'nha-source-etag': 'none' }), 'different'],
    ['target ETag empty (torn), no metadata', o('k', 10, A), o('k', 10, '', {}), 'different'],
  ];
  it.each(rows)('%s', (_name, s, t, want) => {
    expect(compareObjects(s, t)).toBe(want);
  });
});

describe('diffListings', () => {
  const rows: Array<{ name: string; source: ObjectInfo[]; target: ObjectInfo[]; copy: string[]; del: string[]; same: number; need: string[] }> = [
    { name: 'empty both', source: [], target: [], copy: [], del: [], same: 0, need: [] },
    { name: 'initial', source: [o('a', 1, A), o('b', 2, B)], target: [], copy: ['a:new', 'b:new'], del: [], same: 0, need: [] },
    { name: 'no-op', source: [o('a', 1, A)], target: [o('a', 1, A)], copy: [], del: [], same: 1, need: [] },
    { name: 'changed', source: [o('a', 1, A)], target: [o('a', 1, B)], copy: ['a:changed'], del: [], same: 0, need: [] },
    { name: 'deleted at source', source: [o('a', 1, A)], target: [o('a', 1, A), o('z', 1, B)], copy: [], del: ['z'], same: 1, need: [] },
    { name: 'multipart needs HEAD', source: [o('a', 1, A)], target: [o('a', 1, M1)], copy: [], del: [], same: 0, need: ['a'] },
    {
      name: 'quarantine prefix ignored on both sides',
      source: [o('nha-quarantine/x/a', 1, A)],
      target: [o('nha-quarantine/y/b', 1, A)],
      copy: [], del: [], same: 0, need: [],
    },
  ];
  it.each(rows)('$name', ({ source, target, copy, del, same, need }) => {
    const d = diffListings(source, target);
    expect(d.copy.map((c) => `${c.key}:${c.reason}`)).toEqual(copy);
    expect(d.delete.map((x) => x.key)).toEqual(del);
    expect(d.unchanged.length).toBe(same);
    expect(d.needMetadata.map((x) => x.key)).toEqual(need);
  });
});

describe('isMultipartEtag', () => {
  it.each([[A, false], [M1, true], ['abc-', false], ['abc-12', true]] as const)('%s → %s', (e, want) => {
    expect(isMultipartEtag(e)).toBe(want);
  });
});

describe('deleteGuard', () => {
  const rows: Array<[string, number, number, number, number, boolean, RegExp | null]> = [
    ['no deletes', 10, 10, 0, 0.1, false, null],
    ['within fraction', 99, 100, 10, 0.1, false, null],
    ['above fraction', 89, 100, 11, 0.1, false, /would delete 11 of 100/],
    ['empty source refused', 0, 5, 5, 1, false, /lists no objects/],
    ['empty source allowed', 0, 5, 5, 0.1, true, null],
    ['small target: one delete of 3 is 33 %', 2, 3, 1, 0.1, false, /maxDeleteFraction/],
  ];
  it.each(rows)('%s', (_n, s, t, d, f, allow, want) => {
    const r = deleteGuard(s, t, d, f, allow);
    if (want === null) expect(r).toBeNull();
    else expect(r).toMatch(want);
  });
});

describe('splitRecent', () => {
  const at = (key: string, mtimeMs: number): ObjectInfo => ({ key, size: 1, etag: A, mtimeMs });
  const rows: Array<[string, ObjectInfo[], number, string[], string[]]> = [
    ['nothing to delete', [], 1000, [], []],
    ['old objects go now', [at('a', 10), at('b', 999)], 1000, ['a', 'b'], []],
    ['written at the cutoff waits', [at('a', 1000)], 1000, [], ['a']],
    ['written after the listings began waits (a write to both sides mid-pass)', [at('old', 1), at('new', 5000)], 1000, ['old'], ['new']],
    ['unknown time (0) counts as old', [at('a', 0)], 1000, ['a'], []],
  ];
  it.each(rows)('deletes: %s', (_n, deletes, cutoff, now, later) => {
    const r = splitRecent(deletes, (t) => t.mtimeMs, cutoff);
    expect(r.now.map((x) => x.key)).toEqual(now);
    expect(r.later.map((x) => x.key)).toEqual(later);
  });
  it('copies: a new object (no target) goes now; one that would overwrite a recent target object waits', () => {
    const items = [
      { key: 'new', target: undefined },
      { key: 'over-old', target: at('over-old', 10) },
      { key: 'over-recent', target: at('over-recent', 2000) },
    ];
    const r = splitRecent(items, (c) => c.target?.mtimeMs, 1000);
    expect(r.now.map((x) => x.key)).toEqual(['new', 'over-old']);
    expect(r.later.map((x) => x.key)).toEqual(['over-recent']);
  });
});
