import { describe, expect, it } from 'vitest';
import { checkDeletes, DeleteWindow, type DeleteLimits } from '../../src/replication/files/delete-guard.js';

const limits: DeleteLimits = { maxDeleteFraction: 0.1, minDeletes: 10, maxDeletesPerWindow: 100, allowEmptySource: false };

describe('checkDeletes', () => {
  it.each([
    ['nothing to delete, even from an empty source', { sourceEmpty: true, copyCount: 50, deletes: 0, recentDeletes: 0 }, {}, null],
    ['rm -rf of the contents: the source is empty', { sourceEmpty: true, copyCount: 50, deletes: 50, recentDeletes: 0 }, {}, 'empty-source'],
    ['one file of a 3-file tree is within the allowance', { sourceEmpty: false, copyCount: 3, deletes: 1, recentDeletes: 0 }, {}, null],
    ['the last file of a tree: the source is then empty', { sourceEmpty: true, copyCount: 1, deletes: 1, recentDeletes: 0 }, {}, 'empty-source'],
    ['an empty source when allowed', { sourceEmpty: true, copyCount: 50, deletes: 50, recentDeletes: 0 }, { allowEmptySource: true }, null],
    ['49 of 50 at once', { sourceEmpty: false, copyCount: 50, deletes: 49, recentDeletes: 0 }, {}, 'fraction'],
    ['10 % of 1,000 at once', { sourceEmpty: false, copyCount: 1000, deletes: 100, recentDeletes: 0 }, {}, null],
    ['101 of 1,000 at once', { sourceEmpty: false, copyCount: 1000, deletes: 101, recentDeletes: 0 }, {}, 'fraction'],
    ['a trickle: 5 more after 10 of 100 in the window', { sourceEmpty: false, copyCount: 90, deletes: 5, recentDeletes: 10 }, { minDeletes: 0 }, 'window'],
    ['a trickle within the window', { sourceEmpty: false, copyCount: 95, deletes: 5, recentDeletes: 5 }, { minDeletes: 0 }, null],
    ['the hard cap on a large tree', { sourceEmpty: false, copyCount: 100_000, deletes: 60, recentDeletes: 60 }, {}, 'window'],
  ])('%s', (_name, req, more, rule) => {
    const v = checkDeletes(req, { ...limits, ...more }, 'file');
    if (rule === null) expect(v).toEqual({ ok: true });
    else {
      expect(v.ok).toBe(false);
      if (!v.ok) {
        expect(v.rule).toBe(rule);
        expect(v.message.length).toBeGreaterThan(20);
      }
    }
  });

  it('says how many deletes the window still has room for', () => {
    const v = checkDeletes({ sourceEmpty: false, copyCount: 94, deletes: 8, recentDeletes: 6 }, { ...limits, minDeletes: 0 }, 'object');
    expect(v).toMatchObject({ ok: false, rule: 'window', allowed: 4 });
  });
});

describe('DeleteWindow', () => {
  it('counts deletes within the window and tells when the oldest leaves it', () => {
    const w = new DeleteWindow(1000);
    expect(w.recent(0)).toBe(0);
    expect(w.nextFreeAt(0)).toBeNull();
    w.add(100, 3);
    w.add(600, 2);
    w.add(700, 0);
    expect(w.recent(700)).toBe(5);
    expect(w.nextFreeAt(700)).toBe(1100);
    expect(w.recent(1100)).toBe(2);
    expect(w.nextFreeAt(1100)).toBe(1600);
    expect(w.recent(1600)).toBe(0);
  });
});
