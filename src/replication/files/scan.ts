/**
 * Reads a tree from disk into manifest entries (used by both sides), with a hash cache so a full
 * pass over an unchanged tree costs stats, not reads.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ManifestEntry } from './protocol.js';
import { isTempName } from './paths.js';

export async function sha256File(abs: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Remembers file hashes by (size, mtime, ctime, inode) so unchanged files are not read again. */
export class HashCache {
  private readonly map = new Map<string, { key: string; sha256: string }>();

  async hash(abs: string, st: Stats): Promise<string> {
    const key = `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
    const hit = this.map.get(abs);
    if (hit && hit.key === key) return hit.sha256;
    const sha256 = await sha256File(abs);
    this.map.set(abs, { key, sha256 });
    return sha256;
  }

  /** Record a hash we already know (a file we just wrote). */
  remember(abs: string, st: Stats, sha256: string): void {
    this.map.set(abs, { key: `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`, sha256 });
  }

  forget(abs: string): void {
    this.map.delete(abs);
  }
}

export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The manifest entry for one path, or null when absent (or a kind we do not sync, e.g. a socket). */
export async function entryAt(root: string, rel: string, cache: HashCache): Promise<ManifestEntry | null> {
  const abs = posix.join(root, rel);
  let st: Stats;
  try {
    st = await lstat(abs);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
  if (st.isSymbolicLink()) return { type: 'link', path: rel, target: await readlink(abs) };
  if (st.isDirectory()) return { type: 'dir', path: rel, mode: st.mode & 0o777 };
  if (st.isFile()) {
    try {
      const sha256 = await cache.hash(abs, st);
      return { type: 'file', path: rel, size: st.size, mtimeMs: st.mtimeMs, sha256, mode: st.mode & 0o777 };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }
  return null;
}

/**
 * One lstat's worth of a path for event-driven shipping: the entry without a file checksum (the
 * shipper hashes what it reads) and a signature that changes whenever content, mode or times change.
 * Null when the path is gone.
 */
export async function statEntry(root: string, rel: string): Promise<{ entry: ManifestEntry; sig: string; links: number } | null> {
  const abs = posix.join(root, rel);
  let st: Stats;
  try {
    st = await lstat(abs);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
  const sig = `${st.mode}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
  const mode = st.mode & 0o777;
  if (st.isSymbolicLink()) {
    try {
      return { entry: { type: 'link', path: rel, target: await readlink(abs) }, sig, links: st.nlink };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }
  if (st.isDirectory()) return { entry: { type: 'dir', path: rel, mode }, sig, links: 1 };
  if (st.isFile()) return { entry: { type: 'file', path: rel, size: st.size, mtimeMs: st.mtimeMs, sha256: '', mode }, sig, links: st.nlink };
  return null;
}

/**
 * Every entry below `root` (parents before children), skipping excluded paths and our temp files.
 * Symlinks are listed, never followed. A missing root yields an empty list.
 */
export async function scanTree(root: string, excluded: (rel: string) => boolean, cache: HashCache): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  const walk = async (dirRel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dirRel ? posix.join(root, dirRel) : root);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    names.sort();
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      if (isTempName(rel) || excluded(rel)) continue;
      const e = await entryAt(root, rel, cache);
      if (!e) continue;
      out.push(e);
      if (e.type === 'dir') await walk(rel);
    }
  };
  await walk('');
  return out;
}

/** Relative paths of everything below `dir` (not following links); empty when it is gone. */
export async function listBelow(root: string, dir: string, excluded: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let ents;
    try {
      ents = await readdir(posix.join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const r = `${rel}/${e.name}`;
      if (isTempName(r) || excluded(r)) continue;
      out.push(r);
      if (e.isDirectory()) await walk(r);
    }
  };
  await walk(dir);
  return out;
}

/** dev:ino of a directory (null when it is missing or not a directory): tells a replaced or re-mounted root apart. */
/**
 * The identity of a directory: dev:ino and, where the file system records it, its birth time. A
 * directory removed and created again at once often gets the same inode number back (ext4 reuses it),
 * so dev:ino alone would take the new directory for the old one.
 */
export async function rootIdOf(root: string): Promise<string | null> {
  const st = await stat(root, { bigint: true }).catch(() => null);
  if (!st?.isDirectory()) return null;
  return st.birthtimeNs > 0n ? `${st.dev}:${st.ino}:${st.birthtimeNs}` : `${st.dev}:${st.ino}`;
}

/** Whether a tree holds any file or link (not counting directories, excluded paths and temp files). */
export async function hasEntries(root: string, excluded: (rel: string) => boolean): Promise<boolean> {
  const walk = async (rel: string): Promise<boolean> => {
    let ents;
    try {
      ents = await readdir(rel ? posix.join(root, rel) : root, { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (isTempName(r) || excluded(r)) continue;
      if (!e.isDirectory()) return true;
    }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory() && !excluded(r) && (await walk(r))) return true;
    }
    return false;
  };
  return walk('');
}
