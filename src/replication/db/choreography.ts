/**
 * The database side of takeover, rejoin and planned switchover, over the Database port plus the few
 * extra operations of `ManagedDatabase`. Every step is bounded in time and reports its duration so the
 * failover and switchover events carry measured timings.
 */
import type { Readable } from 'node:stream';
import { systemClock } from '../../clock.js';
import { errorMessage, HaError } from '../../errors.js';
import type { EventInput } from '../../events/bus.js';
import type { Clock, Database, DbEndpoint, DbPosition } from '../../ports.js';
import type { ManagedDatabase } from './types.js';

export interface ChoreographyDeps {
  clock?: Clock;
  /** Receives the events of the choreography (wire to EventBus.emit). */
  emit?: (e: EventInput) => void;
  /** Poll interval while waiting for replay. */
  pollMs?: number;
}

export interface PromoteResult {
  promoteMs: number;
  position: DbPosition | null;
}

/** Promotes the local standby; resolves when it accepts writes. */
export async function promoteStandby(db: Database, deps: ChoreographyDeps = {}): Promise<PromoteResult> {
  const clock = deps.clock ?? systemClock;
  const before = await db.status();
  if (before.mode === 'primary') return { promoteMs: 0, position: before.position };
  if (before.mode !== 'standby') throw new HaError('DB_FAILED', `cannot promote ${db.describe()}: it is ${before.mode}; start it first`);
  const t0 = clock.monotonicMs();
  await db.promote();
  const after = await db.status();
  const promoteMs = Math.round(clock.monotonicMs() - t0);
  deps.emit?.({
    type: 'db.promoted',
    severity: 'warning',
    message: `database promoted to primary in ${promoteMs} ms (timeline ${after.position?.timeline ?? '?'})`,
    details: { promoteMs, lsn: after.position?.lsn, timeline: after.position?.timeline, replayedBefore: before.position?.lsn },
  });
  return { promoteMs, position: after.position };
}

export interface RejoinResult {
  /** follow: it could stream from the new primary as is; reclone: it had diverged and was cloned afresh. */
  path: 'follow' | 'reclone';
  durationMs: number;
  /** The WAL the old primary wrote after the fork (lost to the cluster, kept in `keptDir`). */
  diverged: { fromLsn: string; toLsn: string; bytes: number } | null;
  keptDir: string | null;
}

/**
 * Turns a former primary into a standby of `newPrimary`. It follows as is only when its WAL ends at or
 * before the point where the new primary's timeline forked; otherwise (it wrote after the fork) it is
 * re-cloned and its old data directory kept aside, never followed blindly.
 */
export async function rejoinAsStandby(
  oldPrimary: ManagedDatabase,
  newPrimary: DbEndpoint,
  fetchBackup: () => Promise<Readable>,
  deps: ChoreographyDeps = {},
): Promise<RejoinResult> {
  const clock = deps.clock ?? systemClock;
  const t0 = clock.monotonicMs();
  // Immediate, not fast: a fast shutdown of a former primary writes a shutdown checkpoint (and, with
  // archiving on, a segment switch) after the new primary's fork point, which alone would force a
  // re-clone although no client wrote anything there. Crash recovery finds the real end of its WAL.
  if (await oldPrimary.isRunning()) await oldPrimary.stop('immediate');
  try {
    await oldPrimary.follow(newPrimary);
    const durationMs = Math.round(clock.monotonicMs() - t0);
    deps.emit?.({ type: 'db.rejoined', severity: 'info', message: `former primary follows ${newPrimary.host}:${newPrimary.port} without re-clone (${durationMs} ms)`, details: { path: 'follow', durationMs } });
    return { path: 'follow', durationMs, diverged: null, keptDir: null };
  } catch (err) {
    if (!(err instanceof HaError) || err.code !== 'TIMELINE_DIVERGED') throw err;
    const d = err.details ?? {};
    const diverged = { fromLsn: String(d.divergedFromLsn), toLsn: String(d.divergedToLsn), bytes: Number(d.divergedBytes ?? 0) };
    deps.emit?.({
      type: 'db.diverged',
      severity: 'critical',
      message: `former primary wrote WAL ${diverged.fromLsn}..${diverged.toLsn} (${diverged.bytes} bytes) after the new primary forked; re-cloning and keeping the old data directory aside`,
      details: { ...d, reason: err.message },
    });
    // Its archive may hold WAL of the forked history under the same file names as the new primary's:
    // restoring from it would replay the wrong past. It is kept aside with the old data directory.
    const r = await oldPrimary.clone(await fetchBackup(), newPrimary, { force: true, keepOld: true, archiveAside: true });
    const durationMs = Math.round(clock.monotonicMs() - t0);
    deps.emit?.({
      type: 'db.rejoined',
      severity: 'warning',
      message: `former primary re-cloned from ${newPrimary.host}:${newPrimary.port} in ${durationMs} ms; diverged data kept in ${r.keptDir}`,
      details: { path: 'reclone', durationMs, keptDir: r.keptDir, diverged, cloneBytes: r.bytes },
    });
    return { path: 'reclone', durationMs, diverged, keptDir: r.keptDir };
  }
}

export interface SwitchoverTimings {
  fenceMs: number;
  catchUpMs: number;
  /** Clean shutdown of the old primary (its final WAL reaches the standby). */
  stopMs: number;
  promoteMs: number;
  repointMs: number;
  /** From the fence until the new primary accepted writes. */
  writeGapMs: number;
  totalMs: number;
  /** Last position written by the old primary before its shutdown checkpoint. */
  fencedLsn: string;
  /** True when the old primary follows the new one; false when repointing failed (switchover stands). */
  repointed: boolean;
}

async function waitReplay(db: Database, bytes: number, timeoutMs: number, clock: Clock, pollMs: number): Promise<boolean> {
  const deadline = clock.monotonicMs() + timeoutMs;
  for (;;) {
    const s = await db.status().catch(() => null);
    if (s?.position && s.position.bytes >= bytes) return true;
    if (clock.monotonicMs() > deadline) return false;
    await clock.sleep(pollMs);
  }
}

/**
 * Planned switchover with zero loss: fence writes on the old primary, wait until the standby replayed
 * its last position, shut it down cleanly (the walsender ships everything up to the shutdown checkpoint),
 * check the standby has that too, promote the standby, and repoint the old primary as its standby
 * (no rewind needed: its WAL ends before the fork). A standby that does not catch up in time aborts the
 * switchover and the old primary is unfenced.
 */
export async function switchover(
  oldPrimary: ManagedDatabase,
  standby: ManagedDatabase,
  opts: ChoreographyDeps & { catchUpTimeoutMs: number },
): Promise<SwitchoverTimings> {
  const clock = opts.clock ?? systemClock;
  const pollMs = opts.pollMs ?? 20;
  const s = await standby.status();
  if (s.mode !== 'standby' || !s.streaming) {
    throw new HaError('SWITCHOVER_REFUSED', `switchover refused: ${standby.describe()} is ${s.mode}${s.mode === 'standby' ? ' but not streaming' : ''}; wait until it streams`);
  }
  const t0 = clock.monotonicMs();
  const fenced = await oldPrimary.fenceWrites();
  const tFenced = clock.monotonicMs();
  const abort = async (why: string): Promise<never> => {
    if (!(await oldPrimary.isRunning())) await oldPrimary.start();
    await oldPrimary.unfenceWrites();
    opts.emit?.({ type: 'db.switchover.aborted', severity: 'warning', message: `switchover aborted, old primary unfenced: ${why}`, details: { fencedLsn: fenced.lsn } });
    throw new HaError('SWITCHOVER_REFUSED', `switchover aborted: ${why}; the old primary accepts writes again`);
  };
  if (!(await waitReplay(standby, fenced.bytes, opts.catchUpTimeoutMs, clock, pollMs))) {
    return abort(`standby did not replay ${fenced.lsn} within ${opts.catchUpTimeoutMs} ms`);
  }
  const tCaught = clock.monotonicMs();
  await oldPrimary.stop('fast');
  const end = await oldPrimary.localWalEnd();
  if (!(await waitReplay(standby, end.bytes, opts.catchUpTimeoutMs, clock, pollMs))) {
    return abort(`standby did not receive the old primary's shutdown checkpoint ${end.lsn} within ${opts.catchUpTimeoutMs} ms`);
  }
  const tStopped = clock.monotonicMs();
  await standby.promote();
  const tPromoted = clock.monotonicMs();
  let repointed = true;
  try {
    await oldPrimary.follow(standby.endpoint());
  } catch (err) {
    repointed = false;
    opts.emit?.({ type: 'db.rejoin.failed', severity: 'critical', message: `switchover done but the old primary could not follow the new one: ${errorMessage(err)}`, details: { code: err instanceof HaError ? err.code : undefined } });
  }
  const tEnd = clock.monotonicMs();
  const ms = (a: number, b: number) => Math.round(b - a);
  const timings: SwitchoverTimings = {
    fenceMs: ms(t0, tFenced),
    catchUpMs: ms(tFenced, tCaught),
    stopMs: ms(tCaught, tStopped),
    promoteMs: ms(tStopped, tPromoted),
    repointMs: ms(tPromoted, tEnd),
    writeGapMs: ms(t0, tPromoted),
    totalMs: ms(t0, tEnd),
    fencedLsn: fenced.lsn,
    repointed,
  };
  opts.emit?.({
    type: 'db.switchover',
    severity: 'info',
    message: `database switchover to ${standby.nodeName} done: write gap ${timings.writeGapMs} ms, old primary ${repointed ? 'follows' : 'does NOT follow'} the new one`,
    details: { ...timings, newPrimary: standby.nodeName, oldPrimary: oldPrimary.nodeName },
  });
  return timings;
}
