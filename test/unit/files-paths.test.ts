import { describe, expect, it } from 'vitest';
import { HaError } from '../../src/errors.js';
import {
  checkLinkTarget,
  compileGlob,
  isTempName,
  makeExcluder,
  normalizeRelPath,
  relativizeLinkTarget,
  resolveInTree,
} from '../../src/replication/files/paths.js';

const code = (fn: () => unknown): string | null => {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof HaError ? err.code : `other: ${(err as Error).message}`;
  }
};

describe('resolveInTree', () => {
  const root = '/srv/nimbus/etc';
  it.each([
    ['a.conf', '/srv/nimbus/etc/a.conf', 'a.conf'],
    ['sub/dir/b.conf', '/srv/nimbus/etc/sub/dir/b.conf', 'sub/dir/b.conf'],
    ['./sub//c', '/srv/nimbus/etc/sub/c', 'sub/c'],
    ['..hidden', '/srv/nimbus/etc/..hidden', '..hidden'],
    ['a..b/c', '/srv/nimbus/etc/a..b/c', 'a..b/c'],
    ['back\\slash', '/srv/nimbus/etc/back\\slash', 'back\\slash'],
  ])('accepts %j', (rel, abs, clean) => {
    expect(resolveInTree(root, rel)).toEqual({ rel: clean, abs });
  });

  it.each([
    ['../../etc/x'],
    ['..'],
    ['sub/../../x'],
    ['sub/../x'],
    ['/etc/passwd'],
    ['//etc/passwd'],
    ['C:/windows'],
    ['a\0b'],
    [''],
    ['.'],
    ['./'],
    ['sub/..'],
  ])('refuses %j with FILES_PATH_OUTSIDE_TREE', (rel) => {
    expect(code(() => resolveInTree(root, rel))).toBe('FILES_PATH_OUTSIDE_TREE');
  });

  it('refuses a relative root', () => {
    expect(code(() => resolveInTree('etc', 'a'))).toBe('FILES_FAILED');
  });

  it('normalizes without touching the file system', () => {
    expect(normalizeRelPath('a/./b/')).toBe('a/b');
  });
});

describe('symlink targets', () => {
  it.each([
    ['a/link', 'target', true],
    ['a/link', '../b/c', true],
    ['link', 'sub/../x', true],
    ['a/b/link', '../../x', true],
    ['link', '.', true],
    ['link', '../x', false],
    ['a/link', '../../x', false],
    ['a/link', '../b/../../x', false],
    ['link', '/etc/passwd', false],
    ['link', 'x\0y', false],
    ['link', '', false],
  ])('link %j -> %j allowed=%s', (link, target, ok) => {
    expect(code(() => checkLinkTarget(link, target))).toBe(ok ? null : 'FILES_PATH_OUTSIDE_TREE');
  });

  it.each([
    ['/t', 'a/l', '/t/b/c', '../b/c'],
    ['/t', 'l', '/t/x', 'x'],
    ['/t', 'l', '/etc/x', null],
    ['/t', 'l', '/tx/y', null],
    ['/t', 'a/l', '../x', 'x'.replace('x', '../x')],
    ['/t', 'l', '../x', null],
  ])('relativize root=%s link=%s target=%s', (root, link, target, want) => {
    expect(relativizeLinkTarget(root, link, target)).toBe(want);
  });
});

describe('exclusion globs', () => {
  it.each([
    ['*.swp', 'a.swp', true],
    ['*.swp', 'deep/dir/a.swp', true],
    ['*.swp', 'a.swpx', false],
    ['*.sw?', 'x.swo', true],
    ['?.txt', 'ab.txt', false],
    ['logs/**', 'logs/a/b.log', true],
    ['logs/**', 'x/logs/a', false],
    ['logs', 'x/logs/a', true],
    ['/logs', 'x/logs/a', false],
    ['/logs', 'logs/a', true],
    ['**/cache', 'a/b/cache/x', true],
    ['**/cache', 'cache', true],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/*/z', 'a/b/c/z', false],
    ['a/*/z', 'a/b/z', true],
    ['tmp/', 'tmp/file', true],
    ['file(1).conf', 'file(1).conf', true],
    ['a.b', 'axb', false],
  ])('%j matches %j: %s', (glob, rel, want) => {
    expect(makeExcluder([glob])(rel)).toBe(want);
  });

  it('empty list excludes nothing', () => {
    expect(makeExcluder([])('anything')).toBe(false);
  });

  it('compiles * so that it does not cross a slash', () => {
    expect(compileGlob('a/*').test('a/b/c')).toBe(false);
  });

  it('recognises receiver temp files', () => {
    expect(isTempName('dir/.nha-tmp-x-1234')).toBe(true);
    expect(isTempName('dir/x.nha-tmp-')).toBe(false);
  });
});
