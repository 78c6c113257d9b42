/**
 * The primary's WAL archive volume fills up (docs/postgresql.md, "Full volumes"): a 6 MiB tmpfs mounted
 * on node a's archive directory (root only: mount). archive_command then fails and PostgreSQL keeps the
 * finished segments in pg_wal; the primary must go on serving reads and acknowledging writes, with every
 * acknowledged row on both nodes, the sidecar must say the volume is full (disk.critical), and archiving
 * must catch up by itself once there is room again. Real sidecars, witness and embedded PostgreSQL in
 * sync mode, an independent writer through the database VIP.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { patchNodeConfigs, startPairWithWriter } from '../helpers/db-pair.js';
import { tmpfsUnavailable } from '../helpers/root.js';
import { directDb as direct, until } from '../helpers/wait.js';

const skipReason = tmpfsUnavailable();
if (skipReason) console.warn(`skipping full-archive system test: ${skipReason}`);

async function query<T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: direct(port), connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe.skipIf(skipReason !== null)('the primary\'s WAL archive volume is full (tmpfs, real PostgreSQL)', () => {
  let c: Cluster;
  let mnt = '';
  afterAll(async () => {
    // Detached first (lazily: PostgreSQL may still have a file open there), so removing the stack's
    // directory does not meet a mount point.
    if (mnt) execFileSync('umount', ['-l', mnt]);
    await c?.stop();
  });

  it('reads and acknowledged writes go on, disk.critical is raised, archiving catches up once there is room', async () => {
    c = new Cluster({ db: { sync: 'sync' } });
    patchNodeConfigs(
      c,
      (cfg) => {
        cfg.db.walSegmentSizeMb = 1;
        cfg.disk = { intervalMs: 1000 };
      },
      () => {
        const dir = join(c.nodes.a.dataDir, 'wal-archive');
        mkdirSync(dir, { recursive: true });
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0750', 'tmpfs', dir]);
        mnt = dir;
      },
    );
    const w = await startPairWithWriter(c);

    // About 20 MiB of WAL: the 6 MiB archive fills and archive_command starts failing.
    await query(c.nodes.a.pgPort, 'create table filler (id int, pad text)');
    for (let i = 0; i < 5; i++) {
      await query(c.nodes.a.pgPort, `insert into filler select g, repeat(md5(g::text), 32) from generate_series(1, 3000) g`);
      await query(c.nodes.a.pgPort, 'select pg_switch_wal()');
    }
    await until('archive_command failing', async () => Number((await query<{ n: string }>(c.nodes.a.pgPort, 'select failed_count::text as n from pg_stat_archiver'))[0].n) > 0, 60_000, 500);
    await until('disk.critical for the archive volume', async () => (await c.events('a', 'disk.critical')).length > 0, 30_000, 500);
    // The primary still serves: reads, and writes acknowledged through the VIP.
    const during = w.acked.length;
    await until('writes acknowledged while the archive is full', async () => w.acked.length > during + 100, 30_000);
    expect(Number((await query<{ n: string }>(c.nodes.a.pgPort, 'select count(*)::text as n from filler'))[0].n)).toBe(15_000);
    expect((await c.status('a'))!.role).toBe('primary');

    // Room again: archiving catches up without anyone touching PostgreSQL.
    execFileSync('mount', ['-o', 'remount,size=256m', mnt]);
    await query(c.nodes.a.pgPort, 'select pg_switch_wal()');
    await until('archiving works again', async () => {
      const r = (await query<{ ok: boolean | null }>(c.nodes.a.pgPort, 'select last_archived_time > last_failed_time as ok from pg_stat_archiver'))[0];
      return r.ok === true;
    }, 90_000, 1000);
    await w.stop();
    expect(await w.missing(direct(c.nodes.a.pgPort))).toEqual([]);
    await until('b holds every acknowledged row', async () => (await w.missing(direct(c.nodes.b.pgPort))).length === 0, 60_000);
    expect(await c.events('b', 'failover')).toEqual([]);
  }, 600_000);
});
