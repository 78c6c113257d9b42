/**
 * Pure path rules for file-tree sync: every path that crosses the wire is a relative POSIX path inside
 * a named tree, and nothing may resolve outside that tree's root. No I/O here; the receiver adds a
 * realpath check of parent directories on top, because a local symlink could still lead outside.
 */
import { posix } from 'node:path';
import { HaError } from '../../errors.js';

function outside(what: string, detail: string): HaError {
  return new HaError('FILES_PATH_OUTSIDE_TREE', `refused ${what}: ${detail}; only relative paths inside the tree are synced`, {
    path: what,
  });
}

/**
 * Canonical form of a relative path from the wire: forward slashes, no empty or `.` segments.
 * Refuses absolute paths, `..` segments, NUL bytes and the tree root itself.
 */
export function normalizeRelPath(rel: string): string {
  if (typeof rel !== 'string' || rel.length === 0) throw outside(JSON.stringify(rel), 'empty path');
  if (rel.includes('\0')) throw outside(JSON.stringify(rel), 'NUL byte in path');
  if (rel.startsWith('/') || /^[A-Za-z]:[\\/]/.test(rel)) throw outside(rel, 'absolute path');
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw outside(rel, '".." segment');
  if (parts.length === 0) throw outside(rel, 'path names the tree root');
  return parts.join('/');
}

/** Absolute local path of `rel` under `root` (root must be absolute). Throws FILES_PATH_OUTSIDE_TREE. */
export function resolveInTree(root: string, rel: string): { rel: string; abs: string } {
  if (!posix.isAbsolute(root)) throw new HaError('FILES_FAILED', `tree root "${root}" must be an absolute path`);
  const clean = normalizeRelPath(rel);
  const base = posix.resolve(root);
  const abs = posix.resolve(base, clean);
  if (!isInside(base, abs) || abs === base) throw outside(rel, 'resolves outside the tree');
  return { rel: clean, abs };
}

/** Whether `p` is `root` itself or below it (both absolute, already resolved). */
export function isInside(root: string, p: string): boolean {
  const r = posix.relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith('../') && !posix.isAbsolute(r));
}

/**
 * Check a symlink target for a link at `linkRel`: the target, resolved from the link's directory, must
 * stay inside the tree. Absolute targets are refused (roots differ between nodes); the sender rewrites
 * absolute targets inside its own root with {@link relativizeLinkTarget} first. Returns the target.
 */
export function checkLinkTarget(linkRel: string, target: string): string {
  const link = normalizeRelPath(linkRel);
  if (typeof target !== 'string' || target.length === 0) throw outside(link, 'empty symlink target');
  if (target.includes('\0')) throw outside(link, 'NUL byte in symlink target');
  if (target.startsWith('/')) throw outside(link, `symlink target "${target}" is absolute`);
  // Resolve against a fake root so the check stays lexical and pure.
  const fakeRoot = '/__tree__';
  const resolved = posix.resolve(fakeRoot, posix.dirname(link), target);
  if (!isInside(fakeRoot, resolved)) throw outside(link, `symlink target "${target}" points outside the tree`);
  return target;
}

/**
 * Sender side: turn a link target read from disk into a portable one, or null when it leaves the tree.
 * Absolute targets inside `root` become relative to the link's directory.
 */
export function relativizeLinkTarget(root: string, linkRel: string, target: string): string | null {
  let t = target;
  if (posix.isAbsolute(t)) {
    const base = posix.resolve(root);
    const abs = posix.resolve(t);
    if (!isInside(base, abs)) return null;
    const linkDir = posix.dirname(posix.resolve(base, linkRel));
    t = posix.relative(linkDir, abs) || '.';
  }
  try {
    return checkLinkTarget(linkRel, t);
  } catch {
    return null;
  }
}

/**
 * Compile one exclusion glob. `*` matches within a path segment, `?` one character other than `/`,
 * `**` any number of segments (also none). A pattern without `/` matches a name at any depth
 * (like `*.swp`); a pattern with `/` is anchored at the tree root.
 */
export function compileGlob(glob: string): RegExp {
  let g = glob.trim().replace(/\/+$/, '');
  const anchored = g.includes('/');
  g = g.replace(/^\/+/, '');
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === '*') {
      if (g[i + 1] === '*') {
        const atStart = i === 0 || g[i - 1] === '/';
        const atEnd = i + 2 === g.length || g[i + 2] === '/';
        if (atStart && atEnd) {
          // `**/` matches zero or more whole segments; a trailing `**` matches the rest.
          if (i + 2 === g.length) re += '.*';
          else {
            re += '(?:[^/]*/)*';
            i++; // skip the slash after ** as well
          }
          i++;
          continue;
        }
        re += '[^/]*';
        i++;
        continue;
      }
      re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^${re}$` : `^(?:.*/)?${re}$`);
}

/**
 * Predicate for a tree's exclusion list: a path is excluded when it or any of its parent directories
 * matches a glob, so excluding a directory excludes everything below it.
 */
export function makeExcluder(globs: readonly string[]): (rel: string) => boolean {
  const res = globs.filter((g) => g.trim() !== '').map(compileGlob);
  if (res.length === 0) return () => false;
  return (rel: string) => {
    const parts = rel.split('/');
    for (let n = 1; n <= parts.length; n++) {
      const prefix = parts.slice(0, n).join('/');
      if (res.some((r) => r.test(prefix))) return true;
    }
    return false;
  };
}

/** Prefix of the receiver's temporary files; never synced in either direction. */
export const TEMP_PREFIX = '.nha-tmp-';

/** Whether a path's last segment is one of our temporary files. */
export function isTempName(rel: string): boolean {
  return posix.basename(rel).startsWith(TEMP_PREFIX);
}
