/** File listings with checksums, cached by (size, mtime, inode) so unchanged files are not re-read. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { NimbusStateError } from './types.js';

export interface Entry {
  path: string;
  size: number;
  mtimeMs: number;
  sha256?: string;
}

export async function walkFiles(root: string, exclude: (rel: string) => boolean = () => false): Promise<Entry[]> {
  const out: Entry[] = [];
  const visit = async (rel: string) => {
    let names: string[];
    try {
      names = await readdir(join(root, rel));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (exclude(r)) continue;
      const st = await lstat(join(root, r)).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) await visit(r);
      else if (st.isFile()) out.push({ path: r, size: st.size, mtimeMs: Math.round(st.mtimeMs) });
    }
  };
  await visit('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export class HashCache {
  private readonly m = new Map<string, { key: string; sha: string }>();

  async hash(abs: string): Promise<{ size: number; sha256: string }> {
    const st = await lstat(abs, { bigint: true });
    const key = `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`;
    const hit = this.m.get(abs);
    if (hit && hit.key === key) return { size: Number(st.size), sha256: hit.sha };
    const sha = await sha256File(abs);
    this.m.set(abs, { key, sha });
    return { size: Number(st.size), sha256: sha };
  }

  /** Every file under root with its checksum. */
  async manifest(root: string, exclude?: (rel: string) => boolean): Promise<Entry[]> {
    const files = await walkFiles(root, exclude);
    for (const f of files) f.sha256 = (await this.hash(join(root, f.path))).sha256;
    return files;
  }
}

/** A relative path that stays inside its root, or a 400. */
export function safeRelative(p: string): string {
  const n = normalize(p);
  if (!p || isAbsolute(p) || n.startsWith('..') || n.split('/').includes('..') || n === '.') throw new NimbusStateError(`path outside the item: ${JSON.stringify(p)}`, 400);
  return n;
}
