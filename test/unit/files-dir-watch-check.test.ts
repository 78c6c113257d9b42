/**
 * DirWatchCheck on real temp directories: which touched directories were replaced (dev:ino moved).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirWatchCheck } from '../../src/replication/files/dir-watch-check.js';

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(): string {
  const base = mkdtempSync(join(tmpdir(), 'nha-dirwatch-'));
  made.push(base);
  const root = join(base, 'etc');
  for (const d of ['a', 'a/deep', 'b', 'skip']) mkdirSync(join(root, d), { recursive: true });
  return root;
}

const noneExcluded = () => false;

describe('DirWatchCheck', () => {
  it('remembers every directory below the root, not the root, and skips excluded ones', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, (rel) => rel === 'skip');
    await c.recordTree();
    expect(c.size).toBe(3);
  });

  it('reports a touched directory that was moved aside and re-created', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    expect(c.size).toBe(4);
    renameSync(join(root, 'a'), join(root, '..', 'a-aside'));
    mkdirSync(join(root, 'a'));
    c.touched(join(root, 'a', 'old.conf'));
    expect(c.pending).toBe(true);
    expect(await c.replaced()).toEqual([join(root, 'a')]);
    expect(c.pending).toBe(false);
  });

  it('a directory removed and created again at once is replaced, also when it gets the same inode number back', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    // ext4 hands the freed inode number straight to the next mkdir most of the time: five rounds
    // almost surely include such a reuse, which dev:ino alone took for the same directory.
    for (let round = 0; round < 5; round++) {
      rmSync(join(root, 'a'), { recursive: true });
      mkdirSync(join(root, 'a'));
      c.touched(join(root, 'a', `f${round}.conf`));
      expect(await c.replaced()).toEqual([join(root, 'a')]);
      await c.record(join(root, 'a'));
    }
  });

  it('an empty directory replaced is found from the event naming it in its parent (a raw rename)', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    renameSync(join(root, 'b'), join(root, '..', 'b-aside'));
    mkdirSync(join(root, 'b'));
    c.touched(join(root, 'b'));
    expect(await c.replaced()).toEqual([join(root, 'b')]);
  });

  it('a directory found gone is forgotten with everything below it', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    rmSync(join(root, 'a'), { recursive: true });
    c.touched(join(root, 'a'));
    expect(await c.replaced()).toEqual([]);
    expect(c.size).toBe(2);
  });

  it('does not report directories that are unchanged, gone, the root itself, or outside the tree', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    c.touched(join(root, 'b', 'x.conf'));
    c.touched(join(root, 'top.conf'));
    c.touched('/elsewhere/file');
    rmSync(join(root, 'a'), { recursive: true });
    c.touched(join(root, 'a', 'gone.conf'));
    expect(await c.replaced()).toEqual([]);
  });

  it('a replaced directory with a replaced one below: both are found', async () => {
    const root = tree();
    const c = new DirWatchCheck(root, noneExcluded);
    await c.recordTree();
    renameSync(join(root, 'a'), join(root, '..', 'a-aside'));
    mkdirSync(join(root, 'a', 'deep'), { recursive: true });
    c.touched(join(root, 'a', 'deep', 'f.conf'));
    c.touched(join(root, 'a', 'f.conf'));
    expect(await c.replaced()).toContain(join(root, 'a'));
  });
});
