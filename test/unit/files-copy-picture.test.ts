import { describe, expect, it } from 'vitest';
import { CopyPicture } from '../../src/replication/files/copy-picture.js';

const tree = () =>
  new CopyPicture([
    { path: 'a.conf', type: 'file' },
    { path: 'conf.d', type: 'dir' },
    { path: 'conf.d/b.conf', type: 'file' },
    { path: 'conf.d/sub', type: 'dir' },
    { path: 'conf.d/sub/c.conf', type: 'file' },
    { path: 'current', type: 'link' },
    { path: 'empty', type: 'dir' },
  ]);

describe('CopyPicture', () => {
  it('counts files and links, not directories', () => {
    const c = tree();
    expect(c.count()).toBe(4);
    c.set('conf.d/b.conf', 'file');
    expect(c.count()).toBe(4);
    c.set('current', 'dir');
    expect(c.count()).toBe(3);
  });

  it('counts what deletes remove: a directory by its content, nested paths toward the topmost, unknown paths as nothing', () => {
    const c = tree();
    expect(c.removes(['conf.d'])).toBe(2);
    expect(c.removes(['empty'])).toBe(0);
    expect(c.removes(['nowhere', 'a.conf/a.conf'])).toBe(0);
    const by = c.deletesBy(['conf.d', 'conf.d/sub/c.conf', 'a.conf']);
    expect(Object.fromEntries(by)).toEqual({ 'conf.d': 2, 'conf.d/sub/c.conf': 0, 'a.conf': 1 });
    expect(c.removes(['conf.d', 'conf.d/sub/c.conf', 'a.conf'])).toBe(3);
  });

  it('forgets a path and everything below it', () => {
    const c = tree();
    c.forget(['conf.d', 'current']);
    expect(c.count()).toBe(1);
    expect(c.has('conf.d/sub/c.conf')).toBe(false);
    expect(c.has('a.conf')).toBe(true);
    expect(c.has('empty')).toBe(true);
  });
});
