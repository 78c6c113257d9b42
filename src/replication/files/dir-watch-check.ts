/**
 * Finds directories inside a watched tree that were replaced under the watcher: moved aside and
 * re-created under the same name faster than chokidar handles the first event (a tool that renames a
 * directory and writes a new one at once). chokidar then keeps its inotify watches on the old directory
 * and on those below it, reports the old files as unlinked (or nothing, for an empty directory), and
 * never reports what is written into the new one. The root has its own check (the sender's
 * checkRoots); this one covers the directories below it, and the sender answers a replaced one by
 * watching the whole tree afresh and comparing it with the standby's copy in a full pass.
 *
 * It remembers dev:ino of every directory below the root. The watcher's events (also chokidar's raw
 * events, which name a replaced directory when nothing inside it changed) name the directories to look
 * at again: the parent of a changed path, and the path itself when it is a remembered directory.
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

  /** Remember the identity of every directory below the root, as it is now (after the watcher is ready). */
  async recordTree(): Promise<void> {
    const walk = async (abs: string): Promise<void> => {
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
        const id = await rootIdOf(child);
        if (id === null) continue;
        this.ids.set(child, id);
        await walk(child);
      }
    };
    await walk(this.root);
  }

  /** A directory appeared (the watcher's addDir): remember it alone (its subdirectories get their own). */
  async record(dir: string): Promise<void> {
    if (!this.below(dir)) return;
    const id = await rootIdOf(dir);
    if (id !== null) this.ids.set(dir, id);
  }

  /** Something changed at `path` (absolute): look at its directory, and at itself if it is a directory, at the next check. */
  touched(path: string): void {
    const dir = posix.dirname(path);
    if (this.below(dir)) this.suspects.add(dir);
    if (this.ids.has(path)) this.suspects.add(path);
  }

  get pending(): boolean {
    return this.suspects.size > 0;
  }

  /**
   * Whether a directory touched since the last check now has another dev:ino than the remembered one.
   * Directories found gone are forgotten with everything below them (one sweep per check).
   */
  async replaced(): Promise<string[]> {
    const dirs = [...this.suspects].sort();
    this.suspects.clear();
    const out: string[] = [];
    const gone = new Set<string>();
    for (const dir of dirs) {
      const id = await rootIdOf(dir);
      const known = this.ids.get(dir);
      if (id === null) gone.add(dir);
      else if (known === undefined) this.ids.set(dir, id);
      else if (known !== id) out.push(dir);
    }
    if (gone.size) this.forget(gone);
    return out;
  }

  /** Directories remembered (for tests and status). */
  get size(): number {
    return this.ids.size;
  }

  private below(dir: string): boolean {
    return dir !== this.root && isInside(this.root, dir);
  }

  /** Drop `gone` and every remembered directory below one of them: one pass, each key's ancestors looked up. */
  private forget(gone: Set<string>): void {
    for (const k of this.ids.keys()) {
      for (let d = k; d !== this.root && d.length > this.root.length; d = posix.dirname(d)) {
        if (gone.has(d)) {
          this.ids.delete(k);
          break;
        }
      }
    }
  }
}
