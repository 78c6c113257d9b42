import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { directDb as direct, until } from '../helpers/wait.js';

describe('PostgreSQL log shipping through the agent (sync mode, real embedded PostgreSQL)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ db: { sync: 'sync' } });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming and caught up', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('kill -9 of the primary node (sidecar + PostgreSQL) under a write load loses no acknowledged row', async () => {
    const w = new DbWriter(c.dbUrl);
    await w.prepare();
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 50, 20_000);
    // Commits wait for b, and the data-holder record names b (it has flushed everything written before
    // commits started waiting): only then may b promote without a.
    await until('a in sync mode with b in the data-holder record', async () => {
      const s = (await c.status('a'))!;
      return s.replication.db.sync === 'sync' && s.replication.db.standby_holds === true && s.data_holders.holders?.includes('b') === true;
    }, 20_000);
    const ackedBefore = w.acked.length;
    c.kill('a');
    // Kill a's PostgreSQL too: the whole node is gone.
    expect(c.killDb('a')).toBeGreaterThan(0);
    await c.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b primary');
    await until('writes resume through the VIP', async () => w.acked.length > ackedBefore + 20, 30_000);
    await w.stop();
    const lost = await w.missing(direct(c.nodes.b.pgPort));
    expect(w.acked.length).toBeGreaterThan(ackedBefore);
    expect(lost).toEqual([]);
    const ev = (await c.events('b', 'failover')).at(-1);
    expect(ev.details.epoch_after).toBeGreaterThan(ev.details.epoch_before);
  });

  it('the old primary rejoins as a standby of the new one (re-clone, old data kept aside) and a switchover back loses nothing', async () => {
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'a standby');
    await until('a streaming from b', async () => {
      const s = (await c.status('a'))!.replication.db;
      return s.streaming === true && s.mode === 'standby';
    }, 120_000);
    const rejoined = await c.events('a', 'db.rejoined');
    const cloned = await c.events('a', 'db.cloned');
    expect(rejoined.length + cloned.length).toBeGreaterThan(0);

    const w = new DbWriter(c.dbUrl, { table: 'ha_writer_sw' });
    await w.prepare();
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);
    await until('a caught up', async () => (await c.status('b'))!.peers[0].caught_up === true, 30_000);
    const sw = await c.admin('b', '/admin/switchover', { to: 'a' });
    expect(sw.status).toBe(202);
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary again');
    const ackedAtSwitch = w.acked.length;
    await until('writes resume on a', async () => w.acked.length > ackedAtSwitch + 20, 30_000);
    await w.stop();
    expect(await w.missing(direct(c.nodes.a.pgPort))).toEqual([]);
    // b follows a again, as it is: a promoted only after b's last WAL (its shutdown checkpoint) was on a,
    // so the old primary's timeline did not fork and needs no re-clone.
    await until('b streaming from a', async () => (await c.status('b'))!.replication.db.streaming === true, 60_000);
    expect(await c.events('b', 'db.diverged')).toEqual([]);
    expect((await c.events('b', 'db.rejoined')).at(-1)?.details.path).toBe('follow');
  });
});
