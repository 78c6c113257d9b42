/**
 * The kept-open sessions `PostgresNode` runs its read-only status queries on (status, standbys, slots):
 * one small pg pool, created on the first read and ended when the server is stopped.
 */
import pg from 'pg';
import { clientConfig, isConnectionLoss, mapPgError, type ConnTarget } from './sql.js';

export class StatusPool {
  /** Kept-open sessions for the read-only status queries (see `read`). */
  private pool: pg.Pool | null = null;

  /** `target` is asked when a pool is created (the local superuser session); `secrets` are redacted from errors. */
  constructor(
    private readonly target: () => ConnTarget,
    private readonly secrets: string[],
  ) {}

  /** A session is open and idle: a read would not need a new connection. */
  get hasIdle(): boolean {
    return this.pool !== null && this.pool.idleCount > 0;
  }

  /**
   * Read-only status queries run every second (and every 20 ms while a switchover waits for replay):
   * they share a kept-open session instead of paying a new connection and SCRAM exchange each time.
   * A session the server dropped (restart, stop) is discarded and the query retried once on a fresh
   * one, which is safe because these queries only read. Everything that changes the server uses its
   * own short-lived session (`PostgresNode.sql`).
   */
  async read<T>(label: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (!this.pool) {
        const pool = new pg.Pool({ ...clientConfig(this.target()), max: 2, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, allowExitOnIdle: true, application_name: 'nimbus-ha' });
        pool.on('error', () => undefined); // an idle session the server closed; the pool drops it
        // A session lost while checked out (the server killed mid-query) emits 'error' before its query
        // rejects, and the pool's own listener is off while a session is lent: without this one the
        // whole sidecar would stop. The query still rejects; read() retries it once.
        pool.on('connect', (c) => c.on('error', () => undefined));
        this.pool = pool;
      }
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw mapPgError(err, label, this.secrets);
      }
      try {
        const r = await fn(client);
        client.release();
        return r;
      } catch (err) {
        const lost = isConnectionLoss(err);
        client.release(lost ? true : undefined);
        if (lost && attempt === 0) continue;
        throw mapPgError(err, label, this.secrets);
      }
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end().catch(() => undefined);
  }
}
