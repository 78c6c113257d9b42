/**
 * Reads the few fields of global/pg_control that decide how a stopped server may rejoin (there is no
 * pg_controldata among the embedded binaries). Layout of ControlFileData (stable since 9.x on 64-bit):
 * system_identifier u64 @0, state i32 @16, checkPoint u64 @32, checkPointCopy.redo u64 @40,
 * checkPointCopy.ThisTimeLineID u32 @48, checkPointCopy.PrevTimeLineID u32 @52.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTimelineHistory, type TimelineFork } from '../../src/ports.js';

export const DB_STATE = {
  1: 'shut down',
  2: 'shut down in recovery',
  3: 'shutting down',
  4: 'in crash recovery',
  5: 'in archive recovery',
  6: 'in production',
} as const;

export interface ControlData {
  systemId: string;
  state: number;
  stateName: string;
  /** Start of the last checkpoint record. */
  checkpointBytes: number;
  redoBytes: number;
  timeline: number;
  /**
   * Whether a primary stopped cleanly, so its WAL ends right after the shutdown checkpoint. Not for
   * "shut down in recovery": a standby's pg_control holds its last restart point, and the WAL it
   * received and replayed goes further (up to the minimum recovery point and beyond), so its end must
   * be found by replaying.
   */
  cleanShutdown: boolean;
}

function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 4) * 2 ** 32 + b.readUInt32LE(off);
}

export function parseControlFile(b: Buffer): ControlData {
  const state = b.readInt32LE(16);
  return {
    systemId: b.readBigUInt64LE(0).toString(),
    state,
    stateName: (DB_STATE as Record<number, string>)[state] ?? `unknown (${state})`,
    checkpointBytes: u64(b, 32),
    redoBytes: u64(b, 40),
    timeline: b.readUInt32LE(48),
    cleanShutdown: state === 1,
  };
}

export async function readControlFile(dataDir: string): Promise<ControlData> {
  return parseControlFile(await readFile(join(dataDir, 'global', 'pg_control')));
}

/** The forks that led to local timeline `timeline` (its history file in pg_wal), null when missing. */
export async function localTimelineHistory(dataDir: string, timeline: number): Promise<TimelineFork[] | null> {
  if (timeline <= 1) return [];
  const name = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  // pg_wal only: the archive may hold another history's file under the same name.
  try {
    return parseTimelineHistory(await readFile(join(dataDir, 'pg_wal', name), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return null;
  }
}
