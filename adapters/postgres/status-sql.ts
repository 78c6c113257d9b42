/**
 * Status, standby and slot queries, and how their rows become port values. Lag is reported only when
 * the standby is really behind: an idle primary sends nothing, and "time since the last replayed
 * commit" would then grow forever although nothing is missing.
 */
import type pg from 'pg';
import { lsnToBytes, type DbStatus, type ReplicaInfo, type SlotInfo } from '../../src/ports.js';

const STATUS_SQL = `
select pg_is_in_recovery() as rec,
  case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as cur,
  case when pg_is_in_recovery() then null else substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) end as cur_tli,
  pg_last_wal_replay_lsn()::text as replay,
  pg_last_wal_receive_lsn()::text as receive,
  extract(epoch from (clock_timestamp() - pg_last_xact_replay_timestamp())) * 1000 as replay_age_ms,
  r.status as wr_status, r.received_tli as wr_tli, r.latest_end_lsn::text as wr_end,
  (select timeline_id from pg_control_checkpoint()) as ckpt_tli,
  case when pg_is_in_recovery() then null else (select coalesce(max(extract(epoch from clock_timestamp() - a.query_start)), 0) * 1000
    from pg_stat_activity a where a.wait_event = 'SyncRep') end as sync_wait_ms
from (select 1) one left join pg_stat_wal_receiver r on true`;

interface StatusRow {
  rec: boolean;
  cur: string | null;
  cur_tli: string | null;
  replay: string | null;
  receive: string | null;
  replay_age_ms: number | null;
  wr_status: string | null;
  wr_tli: number | null;
  wr_end: string | null;
  ckpt_tli: number;
  /** Primary: age of the oldest commit waiting for synchronous replication (ms), 0 when none waits. */
  sync_wait_ms?: number | string | null;
}

const b = (lsn: string | null): number | null => (lsn ? lsnToBytes(lsn) : null);

export function statusFromRow(row: StatusRow): DbStatus {
  if (!row.rec) {
    const cur = row.cur as string;
    return {
      running: true,
      mode: 'primary',
      position: { lsn: cur, bytes: lsnToBytes(cur), timeline: parseInt(row.cur_tli ?? '1', 16) },
      ...(row.sync_wait_ms !== undefined && row.sync_wait_ms !== null ? { syncWaitMs: Math.max(0, Math.round(Number(row.sync_wait_ms))) } : {}),
    };
  }
  const replay = b(row.replay);
  const streaming = row.wr_status === 'streaming';
  const timeline = row.wr_tli ?? row.ckpt_tli;
  const status: DbStatus = {
    running: true,
    mode: 'standby',
    position: row.replay && replay !== null ? { lsn: row.replay, bytes: replay, timeline } : null,
    streaming,
  };
  if (streaming && replay !== null) {
    const known = Math.max(b(row.wr_end) ?? 0, b(row.receive) ?? 0);
    const behind = Math.max(0, known - replay);
    status.lagBytes = behind;
    status.lagMs = behind === 0 ? 0 : Math.max(0, Math.round(Number(row.replay_age_ms ?? 0)));
  }
  return status;
}

export async function queryStatus(c: pg.ClientBase): Promise<DbStatus> {
  const r = await c.query<StatusRow>(STATUS_SQL);
  return statusFromRow(r.rows[0]);
}

export async function queryReplicas(c: pg.ClientBase): Promise<ReplicaInfo[]> {
  const r = await c.query<{ application_name: string; state: string; sync_state: string; sent: string | null; flush: string | null; replay: string | null; lag_ms: number | null }>(
    `select application_name, state, sync_state, sent_lsn::text as sent, flush_lsn::text as flush, replay_lsn::text as replay,
       extract(epoch from replay_lag) * 1000 as lag_ms from pg_stat_replication order by application_name`,
  );
  return r.rows.map((x) => {
    const sent = b(x.sent);
    const replay = b(x.replay);
    const caughtUp = sent !== null && replay !== null && replay >= sent;
    return {
      name: x.application_name,
      state: x.state,
      syncState: x.sync_state,
      sentBytes: sent,
      flushBytes: b(x.flush),
      replayBytes: replay,
      replayLagMs: caughtUp ? 0 : x.lag_ms === null ? null : Math.round(Number(x.lag_ms)),
    };
  });
}

export async function querySlots(c: pg.ClientBase): Promise<SlotInfo[]> {
  const r = await c.query<{ slot_name: string; active: boolean; wal_status: string | null; restart_lsn: string | null }>(
    `select slot_name, active, wal_status, restart_lsn::text from pg_replication_slots where slot_type = 'physical' order by slot_name`,
  );
  return r.rows.map((x) => ({ name: x.slot_name, active: x.active, walStatus: x.wal_status, restartLsn: x.restart_lsn }));
}
