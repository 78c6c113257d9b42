/**
 * The witness down, then a fault on top (real processes, real embedded PostgreSQL in sync mode, a real
 * witness): the primary keeps its lease while the peer renews it; a primary that stalls past its lease
 * fences, nobody may promote while the witness that keeps the data-holder record is gone, and once the
 * witness is back a holder takes the role again within a few lease times. An independent writer records
 * every acknowledged row; a /primary poller checks there is never a second primary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { directDb as direct, prepareThroughVip, sleep, until } from '../helpers/wait.js';
import { doublePrimaryPoller } from '../helpers/double-primary.js';

describe('witness down, then the primary stalls past its lease', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ db: { sync: 'sync', degradeAfterMs: 1_500 }, nimbus: true });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
    await until('the record names both', async () => JSON.stringify((await c.status('a'))!.data_holders?.holders) === '["a","b"]', 30_000);
  });
  afterAll(async () => {
    if (c?.nodes.a.proc?.pid) process.kill(c.nodes.a.proc.pid, 'SIGCONT');
    await c?.stop();
  });

  it('stays primary without the witness, fences on a stall, and a holder is primary again soon after the witness returns; nothing lost', async () => {
    const poll = doublePrimaryPoller(c);
    const w = new DbWriter(c.dbUrl, { table: 'wd_rows' });
    await prepareThroughVip(w);
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);

    c.witness?.kill('SIGKILL');
    c.witness = null;
    // A coordinator outage alone does not cost the primary its role (b renews the lease).
    await sleep(2_000);
    expect((await c.status('a'))?.role).toBe('primary');
    const epochBefore = (await c.status('a'))!.epoch as number;

    // The primary's sidecar stalls past its lease: it must fence when it wakes, and b must not promote
    // (the record that says who holds every acknowledged write is at the witness).
    const pid = c.nodes.a.proc!.pid!;
    process.kill(pid, 'SIGSTOP');
    await sleep(3_000);
    process.kill(pid, 'SIGCONT');
    await until('a no longer primary', async () => (await c.status('a'))?.role !== 'primary', 10_000);
    await sleep(2_000);
    expect((await c.status('b'))?.role).not.toBe('primary');

    // The witness returns (same data directory): a holder takes the role again within a few leases.
    const back = Date.now();
    c.startWitness();
    await c.waitFor((a, b) => a?.role === 'primary' || b?.role === 'primary', 15_000, 'a primary again after the witness returned');
    const tookMs = Date.now() - back;
    const who = (await c.primary())!;
    expect((await c.status(who))!.epoch).toBeGreaterThan(epochBefore);
    const ackedAt = w.acked.length;
    await until('writes resume', async () => w.acked.length > ackedAt + 20, 30_000);
    await w.stop();
    const polled = await poll.done();
    expect(await w.missing(direct(c.nodes[who].pgPort))).toEqual([]);
    expect(polled.both).toBe(0);
    console.log(`witness-down: primary ${who} again ${tookMs} ms after the witness returned; ${w.acked.length} rows acked, 0 lost`);
  });

  it('with a stale standby (the record names the primary alone): the old primary takes the role back once the witness returns; nothing lost', async () => {
    await c.waitFor((a, b) => !!a && !!b && ['primary', 'standby'].includes(a.role) && ['primary', 'standby'].includes(b.role) && a.role !== b.role, 60_000, 'a primary and a standby');
    const p = (await c.primary())!;
    const q = p === 'a' ? 'b' : 'a';
    await until('the record names both', async () => JSON.stringify((await c.status(p))!.data_holders?.holders) === '["a","b"]', 60_000);
    const poll = doublePrimaryPoller(c);
    const w = new DbWriter(c.dbUrl, { table: 'wd_stale' });
    await prepareThroughVip(w);
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);
    // The standby's database dies: after degradeAfterMs the record names the primary alone. The witness
    // dies right after, so the standby cannot be named again while it catches up.
    c.killDb(q);
    await until('the record names the primary alone', async () => JSON.stringify((await c.status(p))!.data_holders?.holders) === JSON.stringify([p]), 20_000);
    c.witness?.kill('SIGKILL');
    c.witness = null;
    await sleep(1_500);
    const epochBefore = (await c.status(p))!.epoch as number;
    const pid = c.nodes[p].proc!.pid!;
    process.kill(pid, 'SIGSTOP');
    await sleep(3_000);
    process.kill(pid, 'SIGCONT');
    await until('the old primary fenced', async () => (await c.status(p))?.role !== 'primary', 10_000);
    await sleep(2_000);
    expect((await c.status(q))?.role).not.toBe('primary');

    const back = Date.now();
    c.startWitness();
    await c.waitFor((a, b) => (p === 'a' ? a : b)?.role === 'primary', 15_000, `${p} primary again after the witness returned`);
    const tookMs = Date.now() - back;
    expect((await c.status(p))!.epoch).toBeGreaterThan(epochBefore);
    expect((await c.status(q))?.role).not.toBe('primary');
    const ackedAt = w.acked.length;
    await until('writes resume', async () => w.acked.length > ackedAt + 20, 30_000);
    await w.stop();
    const polled = await poll.done();
    expect(await w.missing(direct(c.nodes[p].pgPort))).toEqual([]);
    expect(polled.both).toBe(0);
    console.log(`witness-down (stale standby): ${p} primary again ${tookMs} ms after the witness returned; ${w.acked.length} rows acked, 0 lost`);
  });
});
