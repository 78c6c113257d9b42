/**
 * The sender's picture of the standby's copy of one tree (path → type), taken from the standby's
 * manifest and kept current as changes ship. The delete guard measures deletes against it: files and
 * links count, a directory counts by its content.
 */
import type { ManifestEntry } from './protocol.js';

export class CopyPicture {
  private readonly m = new Map<string, ManifestEntry['type']>();
  private leaves = 0;

  constructor(entries: Iterable<{ path: string; type: ManifestEntry['type'] }> = []) {
    for (const e of entries) this.set(e.path, e.type);
  }

  /** Files and links in the copy. */
  count(): number {
    return this.leaves;
  }

  has(rel: string): boolean {
    return this.m.has(rel);
  }

  set(rel: string, type: ManifestEntry['type']): void {
    const prev = this.m.get(rel);
    if (prev !== undefined && prev !== 'dir') this.leaves--;
    if (type !== 'dir') this.leaves++;
    this.m.set(rel, type);
  }

  /**
   * How many files and links deleting each of `rels` removes, in one walk of the copy. A path below
   * another path of `rels` counts toward the topmost one (deleting a directory deletes its content).
   */
  deletesBy(rels: readonly string[]): Map<string, number> {
    const out = new Map<string, number>(rels.map((r) => [r, 0]));
    if (rels.length === 0) return out;
    for (const [p, type] of this.m) {
      if (type === 'dir') continue;
      let top: string | null = null;
      for (let q = p; ; ) {
        if (out.has(q)) top = q;
        const i = q.lastIndexOf('/');
        if (i < 0) break;
        q = q.slice(0, i);
      }
      if (top !== null) out.set(top, out.get(top)! + 1);
    }
    return out;
  }

  /** Files and links that deleting `rels` removes. */
  removes(rels: readonly string[]): number {
    let n = 0;
    for (const v of this.deletesBy(rels).values()) n += v;
    return n;
  }

  /** Forget `rels` and everything below them, in one walk. */
  forget(rels: readonly string[]): void {
    if (rels.length === 0) return;
    const set = new Set(rels);
    for (const [p, type] of this.m) {
      for (let q = p; ; ) {
        if (set.has(q)) {
          this.m.delete(p);
          if (type !== 'dir') this.leaves--;
          break;
        }
        const i = q.lastIndexOf('/');
        if (i < 0) break;
        q = q.slice(0, i);
      }
    }
  }
}
