/**
 * WAL archive retention as a pure rule: which files of an archive directory may go.
 *
 * A WAL file (segment, `.partial`, `.backup`) is removed by the normal rule only when both hold:
 *  - no reader still needs it: every standby (and every replication slot) has a restart point, and the
 *    file's segment lies before the oldest of them. As in pg_archivecleanup, "before" compares the
 *    log/segment part of the name (the last 16 hex digits of the 24), never the timeline, so a file of an
 *    older timeline at the same or a later segment is kept. A reader whose restart point is unknown
 *    keeps everything: nothing is guessed from file times;
 *  - it is outside the retention window: older than `maxAgeMs` AND not among the newest files that
 *    together fit in `keepBytes` (whichever of the two keeps more).
 * The hard cap `maxBytes` protects the disk: while the archive is larger, the oldest WAL files go even
 * if a reader still needs them (never the newest segment); each reader that needed one of them is
 * reported in `lost` and must be re-cloned. With `headroomBytes` the cap keeps that much room free, so the
 * next file to land (one WAL segment) fits under the cap before the next pass runs. Timeline history files
 * (`NNNNNNNN.history`) are never removed.
 */
import { isArchiveFileName } from './wal-names.js';

export interface ArchiveFile {
  name: string;
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** One reader of the archive: a standby or a replication slot, with the WAL position it restarts from. */
export interface ArchiveReader {
  /** Who it is (a node or slot name), for events and `lost`. */
  name: string;
  /** Restart point in bytes (pg_archivecleanup's %r, a slot's restart_lsn), or null when unknown. */
  restartBytes: number | null;
}

export interface RetentionPolicy {
  /** Files younger than this are kept. */
  maxAgeMs: number;
  /** The newest files up to this many bytes are kept. */
  keepBytes: number;
  /** Hard cap on the whole archive; 0 = none. */
  maxBytes: number;
  /** Room kept free under the hard cap for the next file to land (default 0). */
  headroomBytes?: number;
  /** WAL segment size in bytes (to map a restart point to a segment). */
  segmentBytes: number;
}

export interface RetentionDecision {
  /** Files to remove, oldest first. */
  remove: string[];
  /** Bytes of the archive after removal. */
  bytesAfter: number;
  /** Readers that needed a removed file (hard cap): they must be re-cloned. */
  lost: string[];
  /** Oldest segment number any reader still needs (null: unknown reader, keep all; Infinity: no readers). */
  neededFromSegment: number | null;
  /** Files removed only because of the hard cap. */
  forced: string[];
}

/** Segment number of a WAL file name (log * segmentsPerLog + seg), or null for a history file. */
export function segmentNumberOf(name: string, segmentBytes: number): number | null {
  if (!/^[0-9A-F]{24}/.test(name)) return null;
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16, 24), 16);
  return log * Math.floor(2 ** 32 / segmentBytes) + seg;
}

/** Segment number holding a WAL position. */
export function segmentOfBytes(bytes: number, segmentBytes: number): number {
  return Math.floor(bytes / segmentBytes);
}

/** The WAL file name of a position on a timeline (what pg_archivecleanup is given as %r). */
export function walFileNameOf(timeline: number, bytes: number, segmentBytes: number): string {
  const segno = segmentOfBytes(bytes, segmentBytes);
  const perLog = Math.floor(2 ** 32 / segmentBytes);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(timeline) + hex(Math.floor(segno / perLog)) + hex(segno % perLog);
}

/** WAL order: segment, then timeline, then the name (a `.partial` or `.backup` after its segment). */
function walOrder(a: ArchiveFile & { segno: number }, b: ArchiveFile & { segno: number }): number {
  if (a.segno !== b.segno) return a.segno - b.segno;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function decideRetention(files: ArchiveFile[], readers: ArchiveReader[], policy: RetentionPolicy, nowMs: number): RetentionDecision {
  const wal = files
    .filter((f) => isArchiveFileName(f.name) && !f.name.endsWith('.history'))
    .map((f) => ({ ...f, segno: segmentNumberOf(f.name, policy.segmentBytes)! }))
    .sort(walOrder);
  let total = files.reduce((s, f) => s + f.size, 0);

  let neededFrom: number | null = Infinity;
  for (const r of readers) {
    if (r.restartBytes === null) {
      neededFrom = null;
      break;
    }
    neededFrom = Math.min(neededFrom, segmentOfBytes(r.restartBytes, policy.segmentBytes));
  }

  // The retention window: newest files within keepBytes, and every file younger than maxAgeMs.
  const inWindow = new Set<string>();
  let newest = 0;
  for (let i = wal.length - 1; i >= 0; i--) {
    const f = wal[i];
    if (newest + f.size <= policy.keepBytes) {
      newest += f.size;
      inWindow.add(f.name);
    } else break;
  }
  for (const f of wal) if (nowMs - f.mtimeMs < policy.maxAgeMs) inWindow.add(f.name);

  const removed = new Set<string>();
  const remove: string[] = [];
  const forced: string[] = [];
  for (const f of wal) {
    const unneeded = neededFrom !== null && f.segno < neededFrom;
    if (unneeded && !inWindow.has(f.name)) {
      removed.add(f.name);
      remove.push(f.name);
      total -= f.size;
    }
  }

  const lost = new Set<string>();
  const cap = policy.maxBytes > 0 ? Math.max(0, policy.maxBytes - (policy.headroomBytes ?? 0)) : 0;
  if (policy.maxBytes > 0 && total > cap) {
    const lastSeg = wal.length ? wal[wal.length - 1].segno : -1;
    for (const f of wal) {
      if (total <= cap) break;
      if (removed.has(f.name) || f.segno === lastSeg) continue;
      removed.add(f.name);
      remove.push(f.name);
      forced.push(f.name);
      total -= f.size;
      for (const r of readers) {
        if (r.restartBytes === null || f.segno >= segmentOfBytes(r.restartBytes, policy.segmentBytes)) lost.add(r.name);
      }
    }
  }
  const order = new Map(wal.map((f, i) => [f.name, i]));
  remove.sort((a, b) => order.get(a)! - order.get(b)!);
  return { remove, bytesAfter: total, lost: [...lost].sort(), neededFromSegment: neededFrom, forced };
}
