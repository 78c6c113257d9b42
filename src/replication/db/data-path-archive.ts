import type { EventInput } from '../../events/bus.js';
import type { HaEvent, HookContext } from '../../ports.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';
import { lsnToBytes } from './lsn.js';
import { slotNameFor } from './wal-names.js';
import { ArchiveRetention, readRecloneMarks, restartPointOf, writeRecloneMarks } from './archive-retention-runner.js';
import type { ArchiveReader } from './archive-retention.js';

/**
 * The WAL archive side of the database data path (DbDataPath): its retention, who still reads it,
 * and the re-clone marks the primary's hard cap leaves for standbys. The role state stays with
 * DbDataPath: these functions get what they need explicitly.
 */

/** WAL archive retention (archive-retention-runner.ts) of this path, configured from `config`. */
export function archiveRetention(config: DbConfig, readers: () => Promise<ArchiveReader[]>, emit: (e: EventInput) => void): ArchiveRetention {
  return new ArchiveRetention({
    archiveDir: config.archiveDir,
    policy: {
      maxAgeMs: config.archiveRetention.maxAgeHours * 3_600_000,
      keepBytes: config.archiveRetention.keepMb * 1024 * 1024,
      maxBytes: config.archiveMaxBytes,
      // One segment of room under the cap: the next segment to land fits before the pass it starts.
      headroomBytes: config.archiveMaxBytes >= 4 * config.walSegmentSizeMb * 1024 * 1024 ? config.walSegmentSizeMb * 1024 * 1024 : 0,
      segmentBytes: config.walSegmentSizeMb * 1024 * 1024,
    },
    readers,
    emit,
  });
}

/** What archiveReaders needs from the data path. */
export interface ArchiveReadersDeps {
  node: string;
  peerNode: string | null;
  config: DbConfig;
  db: ManagedDatabase;
  /** Whether the data directory holds a cluster (DbDataPath.hasData). */
  hasData(): boolean;
  emit(type: string, severity: HaEvent['severity'], message: string, details?: Record<string, unknown>): void;
}

/**
 * Who still reads the local WAL archive. Primary: every slot from its restart_lsn (the peer's slot
 * under the peer's name; a lost slot or a missing one: unknown), except standbys already marked for
 * re-clone (a base backup needs no archive); a marked standby that streams again is unmarked.
 * Standby: its own server from its last restart point (pg_control), unknown without data.
 */
export async function archiveReaders(d: ArchiveReadersDeps, primary: boolean): Promise<ArchiveReader[]> {
  const dir = d.config.archiveDir;
  if (!primary) {
    return [{ name: d.node, restartBytes: d.hasData() ? await restartPointOf(d.config.dataDir) : null }];
  }
  const peer = d.peerNode;
  const peerSlot = peer ? slotNameFor(peer) : null;
  let marks = await readRecloneMarks(dir);
  if (marks.length) {
    const streaming = new Set((await d.db.replicas()).filter((r) => r.state === 'streaming').map((r) => r.name));
    const still = marks.filter((m) => !streaming.has(m));
    if (still.length !== marks.length) {
      await writeRecloneMarks(dir, still);
      d.emit('db.archive.reclone_done', 'info', `standby ${marks.filter((m) => streaming.has(m)).join(', ')} streams again: no longer marked for re-clone`);
      marks = still;
    }
  }
  const out: ArchiveReader[] = (await d.db.slots()).map((sl) => ({
    name: sl.name === peerSlot && peer ? peer : sl.name,
    restartBytes: sl.walStatus === 'lost' || !sl.restartLsn ? null : lsnToBytes(sl.restartLsn),
  }));
  if (peer && !out.some((r) => r.name === peer)) out.push({ name: peer, restartBytes: null });
  return out.filter((r) => !marks.includes(r.name));
}

/** Whether the primary marked `node` for re-clone (its archive hard cap removed WAL we needed). */
export async function markedForReclone(node: string, ctx: { transport: HookContext['transport']; peer?: HookContext['peer'] }): Promise<boolean> {
  if (!ctx.peer) return false;
  try {
    const r = await Promise.any(ctx.peer.urls.map((u) => ctx.transport.post<{ readers: string[] }>(u, '/peer/db/reclone', {}, 5000)));
    return r.readers.includes(node);
  } catch {
    return false;
  }
}
