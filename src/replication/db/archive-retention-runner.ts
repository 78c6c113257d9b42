/**
 * Applies the WAL archive retention rule (archive-retention.ts) to an archive directory, on the primary
 * and on the standby alike. Who reads the archive differs:
 *  - on the primary, every replication slot (its restart_lsn; a slot whose WAL was lost, or a known
 *    standby without a slot, counts as "unknown": nothing is removed for it except under the hard cap);
 *  - on the standby, its own server: the REDO position of its last restart point, read from
 *    global/pg_control, which is what pg_archivecleanup receives as %r.
 * When the hard cap removes files a reader still needed, that reader is recorded in
 * `<archiveDir>/.nha-reclone.json` (a name the shipper and PostgreSQL never touch) with a critical event;
 * the standby learns it from the primary and re-clones instead of waiting for WAL that is gone.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EventInput } from '../../events/bus.js';
import { errorMessage } from '../../errors.js';
import { decideRetention, type ArchiveFile, type ArchiveReader, type RetentionDecision, type RetentionPolicy } from './archive-retention.js';
import { isArchiveFileName } from './wal-names.js';

export const RECLONE_FILE = '.nha-reclone.json';

export interface RetentionRunnerOptions {
  archiveDir: string;
  policy: RetentionPolicy;
  /** The archive's readers right now (slots on the primary, the own restart point on a standby). */
  readers: () => Promise<ArchiveReader[]>;
  emit?: (e: EventInput) => void;
  /** Wall clock (ms since the epoch) for file ages. Default Date.now. */
  now?: () => number;
}

export interface RetentionPass extends RetentionDecision {
  bytesBefore: number;
  files: number;
  error?: string;
}

/**
 * REDO position of the last checkpoint or restart point in a data directory's pg_control (u64 at offset
 * 40, as adapters/postgres/pgcontrol.ts reads it), or null when it cannot be read.
 */
export async function restartPointOf(dataDir: string): Promise<number | null> {
  try {
    const fh = await open(join(dataDir, 'global', 'pg_control'), 'r');
    try {
      const b = Buffer.alloc(8);
      const { bytesRead } = await fh.read(b, 0, 8, 40);
      if (bytesRead < 8) return null;
      return b.readUInt32LE(4) * 2 ** 32 + b.readUInt32LE(0);
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

/** Readers marked for re-clone (the hard cap removed WAL they needed). */
export async function readRecloneMarks(archiveDir: string): Promise<string[]> {
  try {
    const v = JSON.parse(await readFile(join(archiveDir, RECLONE_FILE), 'utf8')) as { readers?: unknown };
    return Array.isArray(v.readers) ? v.readers.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export async function writeRecloneMarks(archiveDir: string, readers: string[]): Promise<void> {
  const path = join(archiveDir, RECLONE_FILE);
  if (!readers.length) {
    await unlink(path).catch(() => undefined);
    return;
  }
  await writeFile(`${path}.tmp`, JSON.stringify({ readers: [...new Set(readers)].sort() }) + '\n');
  await rename(`${path}.tmp`, path);
}

export class ArchiveRetention {
  private running: Promise<RetentionPass> | null = null;
  /** Bytes of the archive after the last pass (metrics, soak). */
  lastBytes: number | null = null;
  private lastError: string | null = null;
  /** inotify on the archive directory (and which directory inode it watches): a WAL file landing there
   * starts a pass at once, so the hard cap holds between the periodic passes too. */
  private watcher: FSWatcher | null = null;
  private watchedIno: number | null = null;
  /** A file landed while a pass ran: run once more after it. */
  private again = false;

  constructor(private readonly o: RetentionRunnerOptions) {}

  /**
   * Watch the archive directory; call it again from time to time: a directory that was missing, or was
   * replaced (a re-clone sets the old one aside), is watched anew. A WAL file written there runs a pass
   * when `gate()` allows it.
   */
  async watch(gate: () => boolean): Promise<void> {
    const ino = await stat(this.o.archiveDir).then(
      (s) => s.ino,
      () => null,
    );
    if (this.watcher && ino === this.watchedIno) return;
    this.unwatch();
    if (ino === null) return;
    try {
      const w = watch(this.o.archiveDir, (_event, name) => {
        if (name && !isArchiveFileName(String(name))) return; // temp copies, the re-clone marks
        if (gate()) this.kick();
      });
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.unwatch();
      });
      w.unref();
      this.watcher = w;
      this.watchedIno = ino;
    } catch {
      this.unwatch();
    }
  }

  unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
    this.watchedIno = null;
    this.again = false;
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    void this.runOnce().then(() => {
      if (!this.again || !this.watcher) return;
      this.again = false;
      this.kick();
    });
  }

  /** One pass; concurrent calls share it. Never throws. */
  runOnce(): Promise<RetentionPass> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<RetentionPass> {
    const files: ArchiveFile[] = [];
    try {
      for (const name of await readdir(this.o.archiveDir)) {
        const s = await stat(join(this.o.archiveDir, name)).catch(() => null);
        if (s?.isFile()) files.push({ name, size: s.size, mtimeMs: s.mtimeMs });
      }
      const bytesBefore = files.reduce((a, f) => a + f.size, 0);
      const readers = await this.o.readers();
      const d = decideRetention(files, readers, this.o.policy, this.o.now ? this.o.now() : Date.now());
      let gone = 0;
      for (const name of d.remove) {
        await unlink(join(this.o.archiveDir, name)).then(
          () => gone++,
          () => undefined,
        );
      }
      if (d.forced.length) {
        const headroom = this.o.policy.headroomBytes ?? 0;
        this.o.emit?.({
          type: 'db.archive.cap_reached',
          severity: 'warning',
          message: `WAL archive at its hard cap (${bytesBefore} bytes; cap ${this.o.policy.maxBytes}, of which ${headroom} kept free for the next segment): removed ${d.forced.length} file(s) still inside the retention window or needed`,
          details: { removed: d.forced.length, bytesBefore, bytesAfter: d.bytesAfter, maxBytes: this.o.policy.maxBytes, headroomBytes: headroom },
        });
      }
      if (d.lost.length) {
        const before = await readRecloneMarks(this.o.archiveDir);
        const fresh = d.lost.filter((r) => !before.includes(r));
        await writeRecloneMarks(this.o.archiveDir, [...before, ...d.lost]);
        if (fresh.length) {
          this.o.emit?.({
            type: 'db.archive.reclone_needed',
            severity: 'critical',
            message: `WAL archive hard cap (${this.o.policy.maxBytes} bytes) removed WAL that ${fresh.join(', ')} still needed: marked for re-clone`,
            details: { readers: fresh, firstRemoved: d.forced[0], lastRemoved: d.forced[d.forced.length - 1] },
          });
        }
      }
      if (this.lastError) this.o.emit?.({ type: 'db.archive.retention', severity: 'info', message: 'WAL archive retention works again' });
      this.lastError = null;
      this.lastBytes = d.bytesAfter;
      return { ...d, bytesBefore, files: files.length - gone };
    } catch (err) {
      const msg = errorMessage(err);
      if (msg !== this.lastError) this.o.emit?.({ type: 'db.archive.retention_failed', severity: 'warning', message: `WAL archive retention failed: ${msg}` });
      this.lastError = msg;
      return { remove: [], forced: [], lost: [], bytesAfter: this.lastBytes ?? 0, bytesBefore: 0, neededFromSegment: null, files: files.length, error: msg };
    }
  }
}

/**
 * Removes all but the newest `keep` copies `<dir>.old-*` (data directories kept aside by re-clones);
 * call it once the new standby streams. Returns what was removed.
 */
export async function pruneOldCopies(dir: string, keep: number): Promise<string[]> {
  const base = dir.replace(/\/+$/, '');
  const parent = dirname(base);
  const prefix = `${basename(base)}.old-`;
  const olds = (await readdir(parent).catch(() => [] as string[])).filter((n) => n.startsWith(prefix)).sort();
  const gone: string[] = [];
  for (const n of olds.slice(0, Math.max(0, olds.length - keep))) {
    await rm(join(parent, n), { recursive: true, force: true });
    gone.push(join(parent, n));
  }
  return gone;
}
