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
  /**
   * TLS toward the server (replication sessions to the peer with `tls` configured): the cluster CA as the
   * only trusted issuer, this node's certificate and key as client certificate; the server's certificate
   * must name `host` (as libpq's sslmode=verify-full).
   */
  ssl?: { ca: string; cert: string; key: string };
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

/**
 * Whether an error means the session itself is gone (the server closed it, restarted or is shutting
 * down) rather than the query failing: no SQLSTATE, or class 57P (operator intervention) or 08
 * (connection exception).
 */
export function isConnectionLoss(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code !== 'string' || code.startsWith('57P') || code.startsWith('08');
}

/**
 * pg.Client settings for a target. A connection string (URL form, postgres://user@host:port/db) is
 * parsed here because pg lets the string's absent password override an explicitly given one.
 */
export function clientConfig(target: ConnTarget): pg.ClientConfig {
  if (!target.connectionString) {
    const ssl = target.ssl ? { ...target.ssl, rejectUnauthorized: true } : undefined;
    return { host: target.host, port: target.port, user: target.user, password: target.password, database: target.database ?? 'postgres', ...(ssl ? { ssl } : {}) };
  }
  let u: URL;
  try {
    u = new URL(target.connectionString);
  } catch {
    throw new HaError('CONFIG_INVALID', 'db.connectionString must be a URL: postgres://USER@HOST:PORT/DATABASE (password via db.superuserPassword)');
  }
  const socketHost = u.searchParams.get('host');
  return {
    host: socketHost ?? (decodeURIComponent(u.hostname) || '127.0.0.1'),
    port: u.port ? Number(u.port) : target.port,
    user: decodeURIComponent(u.username) || target.user,
    password: u.password ? decodeURIComponent(u.password) : target.password,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || target.database || 'postgres',
  };
}

export async function withClient<T>(
  target: ConnTarget,
  what: string,
  fn: (c: pg.Client) => Promise<T>,
  opts: { replication?: boolean; timeoutMs?: number } = {},
): Promise<T> {
  const secrets = [target.password];
  const client = new pg.Client({
    ...clientConfig(target),
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

export function replicationTarget(ep: DbEndpoint, user: string, password: string, ssl?: ConnTarget['ssl']): ConnTarget {
  return { host: ep.host, port: ep.port, user, password, database: 'postgres', ...(ssl ? { ssl } : {}) };
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
