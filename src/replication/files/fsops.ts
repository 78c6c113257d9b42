/**
 * Receiver-side file-system steps: parents checked with realpath (a local symlink must not lead a
 * write outside the tree), temp files in the target directory so the final rename is atomic.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readlink, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { HaError } from '../../errors.js';
import { isInside, TEMP_PREFIX } from './paths.js';
import { isMissing } from './scan.js';
import { writeNewSynced } from '../../util/durable.js';

/** Throws FILES_PATH_OUTSIDE_TREE when the deepest existing ancestor of `abs` resolves outside `rootReal`. */
export async function checkExistingAncestor(rootReal: string, abs: string, rel: string): Promise<void> {
  let dir = posix.dirname(abs);
  for (;;) {
    try {
      const real = await realpath(dir);
      if (!isInside(rootReal, real)) {
        throw new HaError('FILES_PATH_OUTSIDE_TREE', `refused ${rel}: its parent directory resolves to ${real}, outside the tree (a local symlink?); remove that link on this node`, { path: rel });
      }
      return;
    } catch (err) {
      if (!isMissing(err)) throw err;
      const up = posix.dirname(dir);
      if (up === dir) return;
      dir = up;
    }
  }
}

/**
 * Throws FILES_PATH_OUTSIDE_TREE when an existing parent of `rel` is reached through a symlink. The
 * primary never sends a path below a link (links are synced as links and never followed), so such a
 * path can only be an attempt to write, link or delete somewhere the path does not name (a chain like
 * `d/up -> ..` then `d/up/x`).
 */
export async function checkRealParent(rootReal: string, abs: string, rel: string): Promise<void> {
  let dir = posix.dirname(abs);
  let relDir = posix.dirname(rel);
  for (;;) {
    try {
      const real = await realpath(dir);
      const expected = relDir === '.' ? rootReal : posix.join(rootReal, relDir);
      if (real !== expected) {
        throw new HaError('FILES_PATH_OUTSIDE_TREE', `refused ${rel}: its parent directory ${relDir} is reached through a symlink (it resolves to ${real}); paths below a link are never synced`, { path: rel });
      }
      return;
    } catch (err) {
      if (!isMissing(err) || relDir === '.') throw err;
      dir = posix.dirname(dir);
      relDir = posix.dirname(relDir);
    }
  }
}

/** Create the parent directories of `abs` and verify they are real directories inside the tree. */
export async function ensureParent(rootReal: string, abs: string, rel: string): Promise<string> {
  await checkRealParent(rootReal, abs, rel);
  const dir = posix.dirname(abs);
  await mkdir(dir, { recursive: true });
  await checkRealParent(rootReal, abs, rel);
  return dir;
}

/**
 * Where a symlink target leads when every link on the way is followed, starting from the link's real
 * parent directory. Throws FILES_PATH_OUTSIDE_TREE when any step leaves `rootReal`, when an existing
 * link on the way has an absolute target, or after 40 links (a loop). Components that do not exist
 * yet are taken as written; the receiver checks every link again after each batch that adds one.
 */
export async function resolveLinkInTree(rootReal: string, parentReal: string, target: string, rel: string): Promise<string> {
  let hops = 0;
  const refuse = (why: string) => new HaError('FILES_PATH_OUTSIDE_TREE', `refused symlink ${rel} -> ${target}: ${why}`, { path: rel });
  const walk = async (from: string, t: string): Promise<string> => {
    if (posix.isAbsolute(t)) throw refuse(`a link on the way has the absolute target "${t}"`);
    let cur = from;
    for (const part of t.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') cur = posix.dirname(cur);
      else {
        const next = posix.join(cur, part);
        const st = await lstat(next).catch((err) => {
          if (isMissing(err)) return null;
          throw err;
        });
        if (st?.isSymbolicLink()) {
          if (++hops > 40) throw refuse('too many links on the way (a loop?)');
          cur = await walk(cur, await readlink(next));
        } else cur = next;
      }
      if (!isInside(rootReal, cur)) throw refuse(`it leads to ${cur}, outside the tree, once the links on the way are followed`);
    }
    return cur;
  };
  return walk(parentReal, target);
}

export function tempPathFor(abs: string): string {
  return posix.join(posix.dirname(abs), `${TEMP_PREFIX}${posix.basename(abs).slice(0, 40)}-${randomBytes(5).toString('hex')}`);
}

/** Write `data` to a new temp file next to `abs` and fsync it; returns the temp path. */
export async function writeTemp(abs: string, data: Buffer): Promise<string> {
  const tmp = tempPathFor(abs);
  await writeNewSynced(tmp, data);
  return tmp;
}

export { syncDir } from '../../util/durable.js';

/** lstat that returns null for a missing path. */
export async function lstatOrNull(abs: string) {
  try {
    return await lstat(abs);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}
