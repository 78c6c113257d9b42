/**
 * Finds directories inside a watched tree that were replaced under the watcher: moved aside and
 * re-created under the same name faster than chokidar handles the first event (a tool that renames a
 * directory and writes a new one at once). chokidar then keeps its inotify watch on the old directory,
 * reports the old files as unlinked, and never reports what is written into the new one. The root has
 * its own check (the sender's checkRoots); this one covers the directories below it.
 *
 * It remembers dev:ino of every directory below the root. The watcher's events name the directories to
 * look at again (the parents of changed paths); one whose dev:ino moved is reported so the caller can
 * watch it afresh and list it.
 */
import { readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { isInside, isTempName } from './paths.js';
import { rootIdOf } from './scan.js';

export class DirWatchCheck {
  private readonly ids = new Map<string, string>();
  private readonly suspects = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly excluded: (rel: string) => boolean,
  ) {}

  /** Remember the identity of `dir` (absolute) and of every directory below it, as they are now. */
  async recordBelow(dir: string): Promise<void> {
    const walk = async (abs: string): Promise<void> => {
      const id = await rootIdOf(abs);
      if (id === null) return;
      if (abs !== this.root) this.ids.set(abs, id);
      let ents;
      try {
        ents = await readdir(abs, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        if (!e.isDirectory()) continue;
        const child = posix.join(abs, e.name);
        const rel = posix.relative(this.root, child);
        if (isTempName(rel) || this.excluded(rel)) continue;
        await walk(child);
      }
    };
    await walk(dir);
  }

  /** A directory left the tree: forget it and what was below it. */
  forgetBelow(dir: string): void {
    for (const k of this.ids.keys()) if (k === dir || isInside(dir, k)) this.ids.delete(k);
  }

  /** Something changed in the directory holding `path` (absolute): look at that directory at the next check. */
  touched(path: string): void {
    const dir = posix.dirname(path);
    if (dir !== this.root && isInside(this.root, dir)) this.suspects.add(dir);
  }

  get pending(): boolean {
    return this.suspects.size > 0;
  }

  /**
   * Directories touched since the last check whose dev:ino differs from the remembered one (outermost
   * first; one below another replaced one is covered by it). Their new identity is remembered.
   */
  async replaced(): Promise<string[]> {
    const dirs = [...this.suspects].sort();
    this.suspects.clear();
    const out: string[] = [];
    for (const dir of dirs) {
      if (out.some((o) => isInside(o, dir))) continue;
      const id = await rootIdOf(dir);
      const known = this.ids.get(dir);
      if (id === null) continue;
      if (known === undefined) this.ids.set(dir, id);
      else if (known !== id) {
        this.forgetBelow(dir);
        await this.recordBelow(dir);
        out.push(dir);
      }
    }
    return out;
  }

  /** Directories remembered (for tests and status). */
  get size(): number {
    return this.ids.size;
  }
}
