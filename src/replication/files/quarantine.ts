/**
 * Fail-back safety on the receiver: which content each path last received from the primary, and a
 * place to move local copies that differ from it (written on this node, e.g. while it was primary)
 * before they are overwritten or deleted, so diverged data is kept, not lost.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TEMP_PREFIX } from './paths.js';

/** Last received sha256 per tree and path, optionally persisted to a JSON file (atomic replace). */
export class ReceivedRecords {
  private trees = new Map<string, Map<string, string>>();
  private loaded: Promise<void> | null = null;
  private dirty = false;

  constructor(private readonly file?: string) {}

  load(): Promise<void> {
    this.loaded ??= (async () => {
      if (!this.file) return;
      try {
        const raw = JSON.parse(await readFile(this.file, 'utf8')) as { trees?: Record<string, Record<string, string>> };
        for (const [tree, paths] of Object.entries(raw.trees ?? {})) this.trees.set(tree, new Map(Object.entries(paths)));
      } catch (err) {
        // A missing file is a first start; a corrupt one only means more files count as diverged.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
      }
    })();
    return this.loaded;
  }

  get(tree: string, rel: string): string | undefined {
    return this.trees.get(tree)?.get(rel);
  }

  set(tree: string, rel: string, sha256: string): void {
    let m = this.trees.get(tree);
    if (!m) this.trees.set(tree, (m = new Map()));
    m.set(rel, sha256);
    this.dirty = true;
  }

  /** Forget `rel` and everything below it. */
  delete(tree: string, rel: string): void {
    const m = this.trees.get(tree);
    if (!m) return;
    // Records are kept for files (and links): a recorded path has nothing below it. Only a directory
    // needs the scan, so an `rm -r` of thousands of files costs one lookup per file, not one scan each.
    if (m.delete(rel)) {
      this.dirty = true;
      return;
    }
    const prefix = rel + '/';
    for (const k of m.keys()) {
      if (k === rel || k.startsWith(prefix)) {
        m.delete(k);
        this.dirty = true;
      }
    }
  }

  async save(): Promise<void> {
    if (!this.file || !this.dirty) return;
    this.dirty = false;
    const out: Record<string, Record<string, string>> = {};
    for (const [tree, m] of this.trees) out[tree] = Object.fromEntries(m);
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = join(dirname(this.file), `${TEMP_PREFIX}${randomBytes(4).toString('hex')}.json`);
    await writeFile(tmp, JSON.stringify({ version: 1, trees: out }));
    await rename(tmp, this.file);
  }
}

/** A quarantine id: sortable by time, unique per batch. */
export function newQuarantineId(nowMs: number): string {
  return `${new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/** Move `abs` to `<quarantineDir>/<id>/<tree>/<rel>`; returns the destination. */
export async function moveToQuarantine(quarantineDir: string, id: string, tree: string, rel: string, abs: string): Promise<string> {
  const dest = join(quarantineDir, id, tree, rel);
  await mkdir(dirname(dest), { recursive: true });
  try {
    await rename(abs, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(abs, dest);
    await unlink(abs);
  }
  return dest;
}

/** Folder (under quarantineDir) of copies kept exactly as received before they were overwritten or deleted. */
export const PREVIOUS_DIR = 'previous';

/** Keep the current `abs` at `<quarantineDir>/previous/<id>/<tree>/<rel>` without moving it (hard link, else a copy). */
export async function keepPrevious(quarantineDir: string, id: string, tree: string, rel: string, abs: string): Promise<string> {
  const dest = join(quarantineDir, PREVIOUS_DIR, id, tree, rel);
  await mkdir(dirname(dest), { recursive: true });
  try {
    await link(abs, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return dest;
    await copyFile(abs, dest);
  }
  return dest;
}

/** The time a quarantine id was made (ms), or null for names that are not ids. */
export function quarantineIdTime(id: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]+$/.exec(id);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : null;
}

/** Remove quarantine and previous-copy folders made before `cutoffMs`; returns how many went. */
export async function pruneQuarantine(quarantineDir: string, cutoffMs: number): Promise<number> {
  let n = 0;
  for (const dir of [quarantineDir, join(quarantineDir, PREVIOUS_DIR)]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const at = quarantineIdTime(name);
      if (at === null || at >= cutoffMs) continue;
      await rm(join(dir, name), { recursive: true, force: true });
      n++;
    }
  }
  return n;
}
