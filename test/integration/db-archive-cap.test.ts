/**
 * The WAL archive's hard cap with a standby away (docs/postgresql.md, retention): the primary's archive
 * passes `db.archiveMaxBytes` while the standby is down, the cap removes WAL the standby still needed and
 * marks it for re-clone (critical event), and when the standby returns it re-clones by itself instead of
 * waiting for WAL that is gone. Nothing acknowledged is lost, the archive stays under its cap. Real
 * sidecars, witness and embedded PostgreSQL (1 MiB WAL segments so the cap acts within seconds), an
 * independent writer through the database VIP.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { patchNodeConfigs, startPairWithWriter } from '../helpers/db-pair.js';
import { directDb as direct, until } from '../helpers/wait.js';

const CAP = 12 * 1024 * 1024;

function archiveBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) {
    try {
      n += statSync(join(dir, f)).size;
    } catch {
      // removed meanwhile
    }
  }
  return n;
}

describe('WAL archive hard cap with the standby away (real PostgreSQL)', () => {
  let c: Cluster;
  afterAll(async () => {
    await c?.stop();
  });

  it('the cap marks the absent standby, which re-clones when it returns; nothing acknowledged is lost', async () => {
    c = new Cluster({ db: { sync: 'sync', degradeAfterMs: 1000 } });
    patchNodeConfigs(c, (cfg) => {
      cfg.db.walSegmentSizeMb = 1;
      cfg.db.archiveMaxBytes = CAP;
      cfg.db.archiveRetention = { maxAgeHours: 0, keepMb: 2 };
    });
    const w = await startPairWithWriter(c);

    // b's machine goes down: sidecar and PostgreSQL.
    c.kill('b');
    c.killDb('b');
    // a writes far more WAL than the cap while b is away (commits wait for b until a degrades).
    const archiveDir = join(c.nodes.a.dataDir, 'wal-archive');
    // Every WAL file landing in the archive runs a retention pass at once (not only the 30 s one): sampled
    // every 25 ms, the archive never holds more than the cap and the one segment being copied in.
    let maxSeen = 0;
    const sampler = setInterval(() => {
      try {
        maxSeen = Math.max(maxSeen, archiveBytes(archiveDir));
      } catch {
        // not there yet
      }
    }, 25);
    sampler.unref();
    const admin = new pg.Client({ connectionString: direct(c.nodes.a.pgPort) });
    await admin.connect();
    try {
      await admin.query('create table filler (id int, pad text)');
      for (let i = 0; i < 6; i++) {
        await admin.query(`insert into filler select g, repeat(md5(g::text), 32) from generate_series(1, 4000) g`);
        await admin.query('select pg_switch_wal()');
      }
    } finally {
      await admin.end();
    }
    // The cap removes what b needed and marks it.
    await until('db.archive.reclone_needed on a', async () => (await c.events('a', 'db.archive.reclone_needed')).length > 0, 120_000, 1000);
    clearInterval(sampler);
    expect(maxSeen).toBeGreaterThan(CAP / 2);
    expect(maxSeen).toBeLessThanOrEqual(CAP + 1024 * 1024);
    expect(archiveBytes(archiveDir)).toBeLessThanOrEqual(CAP - 1024 * 1024);
    const mark = JSON.parse(readFileSync(join(archiveDir, '.nha-reclone.json'), 'utf8')) as { readers: string[] };
    expect(mark.readers.length).toBeGreaterThan(0);
    expect((await c.status('a'))!.role).toBe('primary');

    // b returns as it was (its old data directory): it re-clones instead of waiting for removed WAL.
    c.startNode('b');
    await until('b re-cloned because of the cap', async () => (await c.events('b', 'db.cloned')).some((e) => e.details?.reason === 'archive_cap'), 180_000, 1000);
    await until('b streaming again', async () => (await c.status('b'))!.replication.db.streaming === true, 120_000);
    const back = w.acked.length;
    await until('writes go on', async () => w.acked.length > back + 50, 60_000);
    await w.stop();
    // Every acknowledged row is on a and on the re-cloned b (a hot standby answers reads).
    expect(await w.missing(direct(c.nodes.a.pgPort))).toEqual([]);
    await until('b replayed every acknowledged row', async () => (await w.missing(direct(c.nodes.b.pgPort))).length === 0, 60_000);
    await until('the mark is cleared once b streams', async () => (await c.events('a', 'db.archive.reclone_done')).length > 0, 90_000, 1000);
  }, 600_000);
});
