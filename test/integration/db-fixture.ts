/**
 * Shared setup of the db-* integration tests: temp roots the server user can traverse, one initdb'd
 * template per file (copying it is faster than initdb), free loopback ports, and cleanup by data dir.
 */

import { freePort } from '../../fixtures/cluster.js';
export { freePort } from '../../fixtures/cluster.js';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initTemplate, PostgresNode, type PostgresNodeOptions } from '../../adapters/postgres/embedded.js';
import { parseDbConfig, type DbConfigInput } from '../../src/replication/db/config.js';

export const SUPER_PW = 'super-secret-pw';
export const REPL_PW = 'repl-secret-pw';


export class DbFixture {
  root = '';
  template = '';
  readonly nodes: PostgresNode[] = [];

  async setup(): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'nha-db-'));
    await chmod(this.root, 0o755);
    this.template = join(this.root, 'template');
    await initTemplate(this.template, { superuser: 'postgres', password: SUPER_PW, walSegmentSizeMb: 1 });
  }

  async node(name: string, extra: Partial<DbConfigInput> = {}, opts: PostgresNodeOptions = {}): Promise<PostgresNode> {
    const cfg = parseDbConfig(
      {
        dataDir: join(this.root, name, 'data'),
        archiveDir: join(this.root, name, 'archive'),
        port: await freePort(),
        superuserPassword: SUPER_PW,
        replicationPassword: REPL_PW,
        walSegmentSizeMb: 1,
        archiveTimeoutS: 5,
        cloneTimeoutMs: 60_000,
        settings: { shared_buffers: '16MB', max_connections: '30', wal_sender_timeout: '10s', autovacuum: 'off' },
        ...extra,
      },
      {},
    );
    await chmod(this.root, 0o755);
    const { mkdir, chown } = await import('node:fs/promises');
    await mkdir(join(this.root, name), { recursive: true, mode: 0o755 });
    if (process.getuid?.() === 0) {
      const { execFileSync } = await import('node:child_process');
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      await chown(join(this.root, name), uid, gid);
    }
    const n = new PostgresNode(name, cfg, { fsyncClone: false, ...opts });
    this.nodes.push(n);
    return n;
  }

  async teardown(): Promise<void> {
    for (const n of this.nodes) await n.stop('immediate').catch(() => undefined);
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }
}

export function client(n: PostgresNode): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port: n.endpoint().port, user: 'postgres', password: SUPER_PW, database: 'postgres' });
  c.on('error', () => undefined);
  return c;
}

export async function q<T extends pg.QueryResultRow = Record<string, unknown>>(n: PostgresNode, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = client(n);
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Polls until `fn` is true (bounded). */
export async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
