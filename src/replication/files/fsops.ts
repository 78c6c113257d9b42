/**
 * Receiver-side file-system steps: parents checked with realpath (a local symlink must not lead a
 * write outside the tree), temp files in the target directory so the final rename is atomic.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { HaError } from '../../errors.js';
import { isInside, TEMP_PREFIX } from './paths.js';
import { isMissing } from './scan.js';

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

/** Create the parent directories of `abs` and verify they resolve inside the tree. */
export async function ensureParent(rootReal: string, abs: string, rel: string): Promise<string> {
  await checkExistingAncestor(rootReal, abs, rel);
  const dir = posix.dirname(abs);
  await mkdir(dir, { recursive: true });
  const real = await realpath(dir);
  if (!isInside(rootReal, real)) {
    throw new HaError('FILES_PATH_OUTSIDE_TREE', `refused ${rel}: its parent directory resolves to ${real}, outside the tree`, { path: rel });
  }
  return dir;
}

export function tempPathFor(abs: string): string {
  return posix.join(posix.dirname(abs), `${TEMP_PREFIX}${posix.basename(abs).slice(0, 40)}-${randomBytes(5).toString('hex')}`);
}

/** Write `data` to a new temp file next to `abs` and fsync it; returns the temp path. */
export async function writeTemp(abs: string, data: Buffer): Promise<string> {
  const tmp = tempPathFor(abs);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** fsync a directory so a rename in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename itself has happened.
  } finally {
    await fh?.close();
  }
}

/** lstat that returns null for a missing path. */
export async function lstatOrNull(abs: string) {
  try {
    return await lstat(abs);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}
