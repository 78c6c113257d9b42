import type { Clock, DbStatus, HaEvent, HookContext } from '../../ports.js';
import { errorMessage, HaError } from '../../errors.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';
import { lsnToBytes } from './lsn.js';

/**
 * The planned handover of the database data path (DbDataPath), both sides: the primary stops writes
 * and waits until the standby confirms it replayed the final position; the standby answers that wait
 * on /peer/db/wait-replay. The role state (primary, ready) stays with DbDataPath: these functions get
 * what they need explicitly.
 */

export interface ReplayReply {
  ok: boolean;
  replayLsn: string | null;
  message: string;
}

/** What the primary's side of the handover needs from the data path. */
export interface HandoverDeps {
  db: ManagedDatabase;
  config: DbConfig;
  clock: Clock;
  /** Commits wait for the standby (DbDataPath.syncMode). */
  syncMode(): boolean;
  /** Sets the data path's "server accepts writes and can serve base backups" flag. */
  setReady(ready: boolean): void;
  emit(type: string, severity: HaEvent['severity'], message: string, details?: Record<string, unknown>): void;
}

/**
 * DbDataPath.beforeHandover on the primary: fence writes, wait until the standby confirmed replay of
 * the final position, then stop the server. Throws SWITCHOVER_REFUSED (writes accepted again) when the
 * standby does not confirm.
 */
export async function handOver(d: HandoverDeps, ctx: HookContext): Promise<void> {
  const t0 = d.clock.monotonicMs();
  const s = await d.db.status().catch(() => null);
  if (!s?.running) {
    // The server died and could not be restarted: nothing can be written here any more. The standby
    // has every acknowledged commit when the data-holder record names it (or, asynchronously, what
    // reached it is all there is).
    if (!ctx.peerIsHolder && d.syncMode()) {
      throw new HaError('SWITCHOVER_REFUSED', 'the local database is down and the standby is not named in the data-holder record: it may lack acknowledged commits');
    }
    d.setReady(false);
    d.emit('db.handover', 'warning', `database down: handing over without a final position (${ctx.peerIsHolder ? 'the standby holds every acknowledged commit' : 'asynchronous replication: what reached the standby is kept'})`);
    return;
  }
  d.setReady(false);
  const final = await d.db.fenceWrites();
  const peer = ctx.peer;
  if (!peer) return;
  let reply: ReplayReply;
  try {
    reply = await Promise.any(peer.urls.map((u) => ctx.transport.post<ReplayReply>(u, '/peer/db/wait-replay', { lsn: final.lsn, timeoutMs: d.config.catchUpTimeoutMs }, d.config.catchUpTimeoutMs + 2000)));
  } catch (err) {
    await d.db.unfenceWrites().catch(() => undefined);
    d.setReady(true);
    throw new HaError('SWITCHOVER_REFUSED', `standby did not confirm replay of ${final.lsn}: ${errorMessage(err)}`);
  }
  if (!reply.ok) {
    await d.db.unfenceWrites().catch(() => undefined);
    d.setReady(true);
    throw new HaError('SWITCHOVER_REFUSED', `standby has not replayed ${final.lsn} (at ${reply.replayLsn ?? 'unknown'}): ${reply.message}`);
  }
  // Stop cleanly so every WAL record is on the standby; the rejoin then follows without a re-clone.
  await d.db.stop('fast');
  d.emit('db.handover', 'info', `writes stopped at ${final.lsn}; standby replayed it (${Math.round(d.clock.monotonicMs() - t0)} ms)`, { lsn: final.lsn });
}

/** On the standby: wait until the local replay position reaches `lsn`. */
export async function waitReplay(d: { db: ManagedDatabase; clock: Clock }, lsn: string, timeoutMs: number): Promise<ReplayReply> {
  let want: number;
  try {
    want = lsnToBytes(lsn);
  } catch {
    return { ok: false, replayLsn: null, message: `not an LSN: ${lsn}` };
  }
  const until = d.clock.monotonicMs() + timeoutMs;
  let last: DbStatus | null = null;
  while (d.clock.monotonicMs() < until) {
    last = await d.db.status().catch(() => null);
    if (last?.position && last.position.bytes >= want) return { ok: true, replayLsn: last.position.lsn, message: 'replayed' };
    await d.clock.sleep(20);
  }
  return { ok: false, replayLsn: last?.position?.lsn ?? null, message: `not replayed within ${timeoutMs} ms` };
}
