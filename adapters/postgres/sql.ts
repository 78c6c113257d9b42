/**
 * Short-lived connections to PostgreSQL: the local superuser session for control and status, and
 * replication-protocol sessions to a primary with the replication role (credential check, timeline
 * history, slot creation), with errors mapped to HaError codes and passwords redacted.
 */
import pg from 'pg';
import { HaError } from '../../src/errors.js';
import type { DbEndpoint } from '../../src/ports.js';
import { redact } from './proc.js';

export interface ConnTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  connectionString?: string;
}

/** SQLSTATEs that mean the credentials (or pg_hba) refused us: retrying will not help. */
const AUTH_CODES = new Set(['28P01', '28000']);

export function mapPgError(err: unknown, what: string, secrets: readonly string[]): HaError {
  if (err instanceof HaError) return err;
  const e = err as { code?: string; message?: string };
  const msg = redact(e.message ?? String(err), secrets);
  if (e.code && AUTH_CODES.has(e.code)) {
    return new HaError('DB_AUTH_FAILED', `${what}: authentication refused (${msg}); check the user name, password and pg_hba.conf of the server`, { sqlstate: e.code });
  }
  return new HaError('DB_FAILED', `${what}: ${msg}`, e.code ? { sqlstate: e.code } : undefined);
}

export async function withClient<T>(
  target: ConnTarget,
  what: string,
  fn: (c: pg.Client) => Promise<T>,
  opts: { replication?: boolean; timeoutMs?: number } = {},
): Promise<T> {
  const secrets = [target.password];
  const client = new pg.Client({
    ...(target.connectionString ? { connectionString: target.connectionString } : { host: target.host, port: target.port, user: target.user, database: target.database ?? 'postgres' }),
    password: target.password,
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    ...(opts.replication ? { replication: 'true' as unknown as boolean } : {}),
    application_name: 'nimbus-ha',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw mapPgError(err, what, secrets);
  }
  try {
    return await fn(client);
  } catch (err) {
    throw mapPgError(err, what, secrets);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function replicationTarget(ep: DbEndpoint, user: string, password: string): ConnTarget {
  return { host: ep.host, port: ep.port, user, password, database: 'postgres' };
}

/** Creates a physical slot that reserves WAL from now on; an existing slot is kept. */
export async function createSlotOverReplication(target: ConnTarget, slot: string): Promise<boolean> {
  return withClient(
    target,
    `create replication slot "${slot}" on ${target.host}:${target.port}`,
    async (c) => {
      try {
        await c.query(`CREATE_REPLICATION_SLOT "${slot}" PHYSICAL RESERVE_WAL`);
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === '42710') return false;
        throw err;
      }
    },
    { replication: true },
  );
}
