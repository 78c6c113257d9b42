import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { directDb as direct, until } from '../helpers/wait.js';

describe('a switchover that a later data path refuses (real PostgreSQL and s3rver)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ db: { sync: 'async' }, repo: true });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
    await until('b caught up on every data path', async () => (await c.status('a'))!.peers[0].caught_up === true, 60_000);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('the primary stays primary with its database started again, the VIP back and no acknowledged row lost', async () => {
    const w = new DbWriter(c.dbUrl, { table: 'ha_writer_abort' });
    await w.prepare();
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);

    // b's repository dies after b reported itself caught up: the switchover is accepted, the database
    // path hands over first (writes fenced, server stopped cleanly), then the repository push fails.
    c.nodes.b.cumulus!.kill('SIGKILL');
    c.nodes.b.cumulus = null;
    const sw = await c.admin('a', '/admin/switchover', { to: 'b' });
    expect(sw.status).toBe(202);
    await until('handover aborted', async () => (await c.events('a', 'handover_aborted')).length > 0, 60_000);
    expect((await c.events('a', 'db.handover')).length).toBe(1); // the database had been handed over
    const aborted = (await c.events('a', 'handover_aborted'))[0];
    expect(aborted.message).toMatch(/repository not caught up|ECONNREFUSED|repo/i);

    // a undid the database's part: started again, writable, and the VIP is back on a.
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby' && a?.vip?.held === true, 30_000, 'a primary with the VIP');
    const at = w.acked.length;
    await until('writes resume through the VIP', async () => w.acked.length > at + 20, 30_000);
    await w.stop();
    expect(await w.missing(direct(c.nodes.a.pgPort))).toEqual([]);
    expect((await c.events('a', 'db.resumed')).length).toBe(1);
    await until('a reports its database as primary', async () => (await c.status('a'))!.replication.db.mode === 'primary', 10_000);
    const st = (await c.status('a'))!;
    const req = st.requests.at(-1);
    expect(req.state).toBe('refused');
    expect(req.message).toMatch(/^handover aborted: /);

    // b never promoted and follows a's timeline as it is (a re-started a primary nobody forked from).
    expect(await c.events('b', 'switchover')).toEqual([]);
    await until('b streaming from a again', async () => (await c.status('b'))!.replication.db.streaming === true, 60_000);
    expect(await c.events('b', 'db.diverged')).toEqual([]);
    expect((await c.status('b'))!.epoch).toBe(st.epoch);
  });
});
