/**
 * The config trees' delete journal (tombstones) as the file sync uses it: the receiver records the
 * deletes it applies, the watcher the deletes it sees on the primary, and merge-back asks it whether a
 * path it would bring back was deleted after the offered copy was written.
 */
import { posix } from 'node:path';
import { deletedAfterWrite, newestTombstone, TombstoneJournal, type Tombstone } from '../tombstones.js';

/** Name of the delete journal of the config trees, inside quarantineDir. */
export const TOMBSTONES_FILE = '.tombstones.jsonl';

/**
 * The config trees' delete journal on this node (src/replication/tombstones.ts), keyed `<tree>/<path>`:
 * the deletes its watcher sees while it is primary and the deletes its receiver applies as a standby,
 * kept across promotions and restarts for the quarantine's retention. A merge-back never brings back a
 * path (or a path below a directory) deleted here after the offered copy was written.
 */
export class FileTombstones {
  readonly journal: TombstoneJournal;

  constructor(file?: string, opts: { retentionMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.journal = new TombstoneJournal(file ?? null, opts);
  }

  load(): Promise<void> {
    return this.journal.load();
  }

  /** Record a delete of `rel`; durable when it resolves. */
  deleted(tree: string, rel: string, epoch?: number): Promise<void> {
    return this.journal.deleted(`${tree}/${rel}`, epoch);
  }

  /** `rel` was written again: its own tombstone goes (a directory's above it stays, with its time). */
  written(tree: string, rel: string): void {
    void this.journal.written(`${tree}/${rel}`).catch(() => undefined);
  }

  /** The newest tombstone of `rel` or a directory above it (after load()). */
  newest(tree: string, rel: string): Tombstone | undefined {
    const ts: Array<Tombstone | undefined> = [];
    for (let p = rel; p !== '.' && p !== ''; p = posix.dirname(p)) ts.push(this.journal.get(`${tree}/${p}`));
    return newestTombstone(ts);
  }

  /** `rel` was deleted here after `writtenMs` (the offered copy's write time): not merged back. */
  deletedAfter(tree: string, rel: string, writtenMs: number): boolean {
    return deletedAfterWrite(this.newest(tree, rel), writtenMs);
  }

  size(): number {
    return this.journal.size;
  }

  close(): Promise<void> {
    return this.journal.close();
  }
}
