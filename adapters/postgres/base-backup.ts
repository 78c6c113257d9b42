/**
 * Online base backup with the backup API: `pg_backup_start` in a session kept open while the data
 * directory is streamed, then `pg_backup_stop`, whose backup_label (and tablespace_map) close the
 * stream as entries. The files PostgreSQL's documentation says to leave out of a base backup are skipped.
 */
import { open, readdir, readlink, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { HaError } from '../../src/errors.js';
import { frameHeader, MAGIC, type EntryHeader } from './backup-format.js';
import { NODE_CONF } from './conf.js';

/** Top-level files never copied (run-time state, or node-local to the source). */
const SKIP_TOP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'backup_label.old',
  'tablespace_map',
  'backup_manifest',
  'standby.signal',
  'recovery.signal',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
  NODE_CONF,
]);
/** Directories copied empty: their contents are recreated at start or come from WAL. */
const EMPTY_DIRS = new Set(['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans', 'log']);
/** Subdirectories of the emptied ones that must exist. */
const KEEP_SUBDIRS = ['pg_wal/archive_status', 'pg_wal/summaries'];

const CHUNK = 256 * 1024;

function skipFile(rel: string, name: string): boolean {
  if (!rel.includes('/') && SKIP_TOP_FILES.has(name)) return true;
  return name === 'pg_internal.init' || name.startsWith('pgsql_tmp');
}

async function* walk(root: string, rel: string, counts: { files: number; bytes: number }): AsyncGenerator<Buffer> {
  const dir = join(root, rel);
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name;
    let st;
    try {
      st = await lstat(join(root, r));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // dropped during the backup: WAL replay recreates state
      throw err;
    }
    if (st.isSymbolicLink()) {
      throw new HaError('CLONE_FAILED', `symbolic link in the data directory (${r} -> ${await readlink(join(root, r))}): tablespaces and linked pg_wal are not supported by the clone`);
    }
    if (st.isDirectory()) {
      if (name.startsWith('pgsql_tmp')) continue;
      yield frameHeader({ t: 'd', p: r, m: st.mode & 0o777 });
      if (!rel && EMPTY_DIRS.has(name)) {
        for (const sub of KEEP_SUBDIRS) if (sub.startsWith(`${name}/`)) yield frameHeader({ t: 'd', p: sub, m: 0o700 });
        continue;
      }
      yield* walk(root, r, counts);
      continue;
    }
    if (!st.isFile() || skipFile(rel, name)) continue;
    yield* fileFrames(join(root, r), r, st.size, st.mode & 0o777, counts);
  }
}

/**
 * A file copied while the server writes it: we send exactly the size seen at stat time, padding with
 * zeros if it shrank. Torn or stale pages are repaired by replaying the WAL from the backup start.
 */
async function* fileFrames(path: string, rel: string, size: number, mode: number, counts: { files: number; bytes: number }): AsyncGenerator<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    yield frameHeader({ t: 'f', p: rel, m: mode, s: size });
    let off = 0;
    while (off < size) {
      const want = Math.min(CHUNK, size - off);
      const buf = Buffer.alloc(want);
      const { bytesRead } = await fh.read(buf, 0, want, off);
      if (bytesRead === 0) {
        yield buf; // zero padding for a file that shrank
        off += want;
        continue;
      }
      yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
      off += bytesRead;
    }
  } finally {
    await fh.close();
  }
  counts.files++;
  counts.bytes += size;
}

function textEntry(name: string, text: string, counts: { files: number; bytes: number }): Buffer[] {
  const data = Buffer.from(text);
  counts.files++;
  counts.bytes += data.length;
  return [frameHeader({ t: 'f', p: name, m: 0o600, s: data.length }), data];
}

/**
 * The backup as a stream. `session` is an open superuser connection owned by the stream: it is closed
 * when the stream ends or is destroyed (closing it aborts an unfinished backup on the server).
 */
export function streamBaseBackup(session: pg.Client, dataDir: string, label: string, onClose: () => Promise<void>): Readable {
  async function* frames(): AsyncGenerator<Buffer> {
    try {
      await session.query('select pg_backup_start($1, fast => true)', [label]);
      yield MAGIC;
      const counts = { files: 0, bytes: 0 };
      yield* walk(dataDir, '', counts);
      // The standby gets the WAL written during the backup through its slot (created before the start),
      // so waiting here for the archiver would only add a failure mode.
      const res = await session.query<{ labelfile: string; spcmapfile: string | null }>(
        'select labelfile, spcmapfile from pg_backup_stop(wait_for_archive => false)',
      );
      const row = res.rows[0];
      for (const b of textEntry('backup_label', row.labelfile, counts)) yield b;
      if (row.spcmapfile) for (const b of textEntry('tablespace_map', row.spcmapfile, counts)) yield b;
      const end: EntryHeader = { t: 'end', files: counts.files, bytes: counts.bytes };
      yield frameHeader(end);
    } finally {
      await onClose();
    }
  }
  return Readable.from(frames(), { objectMode: false, highWaterMark: 4 * CHUNK });
}
