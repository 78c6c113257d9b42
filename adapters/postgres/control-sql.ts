/**
 * Statements `PostgresNode` runs on its short-lived superuser sessions to change the local server: the
 * replication role, slots, promotion, lifting the write fence and the synchronous standby (the read-only
 * status queries are in status-sql.ts).
 */
import type pg from 'pg';
import { HaError } from '../../src/errors.js';
import { scramVerifier } from './conf.js';

/** Creates the replication role, or gives an existing one its attributes and password again. */
export async function createReplicationRole(c: pg.Client, role: string, password: string): Promise<void> {
  const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
  const verb = exists.rowCount ? 'ALTER' : 'CREATE';
  await c.query(`${verb} ROLE "${role}" WITH REPLICATION LOGIN PASSWORD '${scramVerifier(password)}'`);
}

/** Creates physical slot `slot` (WAL reserved at once) unless it exists; a lost slot nobody uses is created anew. */
export async function ensurePhysicalSlot(c: pg.Client, slot: string): Promise<void> {
  const r = await c.query<{ wal_status: string | null; active: boolean }>('select wal_status, active from pg_replication_slots where slot_name = $1', [slot]);
  const row = r.rows[0];
  if (row && row.wal_status === 'lost' && !row.active) await c.query('select pg_drop_replication_slot($1)', [slot]);
  else if (row) return;
  await c.query('select pg_create_physical_replication_slot($1, true)', [slot]);
}

/** Promotes the standby and waits (up to 60 s) until it is a primary. */
export async function promoteServer(c: pg.Client): Promise<void> {
  const r = await c.query<{ ok: boolean }>('select pg_promote(true, 60) as ok');
  if (!r.rows[0]?.ok) throw new HaError('DB_FAILED', 'promotion did not finish within 60 s; see the server log');
}

/** Lifts the write fence of `fenceWrites`: default_transaction_read_only back to its default. */
export async function liftWriteFence(c: pg.Client): Promise<void> {
  await c.query('SET default_transaction_read_only = off');
  await c.query('ALTER SYSTEM RESET default_transaction_read_only');
  await c.query('select pg_reload_conf()');
}

/** Commits wait for standby `name` (synchronous_commit on), or for no standby when null. */
export async function setSynchronousStandbyNames(c: pg.Client, name: string | null): Promise<void> {
  if (name === null) await c.query('ALTER SYSTEM RESET synchronous_standby_names');
  else {
    const value = `FIRST 1 ("${name.replace(/"/g, '""')}")`;
    await c.query(`ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`);
    await c.query('ALTER SYSTEM SET synchronous_commit = on');
  }
  await c.query('select pg_reload_conf()');
}

export async function readSynchronousStandbyNames(c: pg.Client): Promise<string> {
  return (await c.query<{ s: string }>('select current_setting($1) as s', ['synchronous_standby_names'])).rows[0].s;
}

/** The standby's replay position ('' before it replayed anything). */
export async function readReplayLsn(c: pg.Client): Promise<string> {
  return (await c.query<{ l: string | null }>('select pg_last_wal_replay_lsn()::text as l')).rows[0].l ?? '';
}
