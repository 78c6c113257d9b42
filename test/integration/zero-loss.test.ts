/**
 * Zero acknowledged loss across double faults and a dead database (real processes, real embedded
 * PostgreSQL in sync mode, a real witness). An independent writer records every acknowledged row; the
 * final primary must hold them all. A /primary poller on both nodes checks there is never a second one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { directDb as direct, sleep, until } from '../helpers/wait.js';
import { doublePrimaryPoller } from '../helpers/double-primary.js';

describe('zero acknowledged loss (sync mode, data-holder record)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ db: { sync: 'sync' } });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
    await until('the record names both', async () => JSON.stringify((await c.status('a'))!.data_holders?.holders) === '["a","b"]', 30_000);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('the record is on /metrics: nimbus_ha_data_holder per node, the witness answers', async () => {
    const text = await (await fetch(`${c.nodes.a.url}/metrics`)).text();
    expect(text).toMatch(/^nimbus_ha_data_holder\{node="a"\} 1$/m);
    expect(text).toMatch(/^nimbus_ha_data_holder\{node="b"\} 1$/m);
    expect(text).toMatch(/^nimbus_ha_witness_unreachable 0$/m);
  });

  it('kill -9 of the primary PostgreSQL alone: it is found and restarted, writes resume, nothing acknowledged is lost', async () => {
    const w = new DbWriter(c.dbUrl, { table: 'zl_dead_db' });
    await w.prepare();
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);
    const before = w.acked.length;
    expect(c.killDb('a')).toBeGreaterThan(0);
    await until('writes resume through the VIP', async () => w.acked.length > before + 20, 45_000);
    await w.stop();
    const primary = await c.primary();
    expect(primary).not.toBeNull();
    expect(await w.missing(direct(c.nodes[primary!].pgPort))).toEqual([]);
    const down = await c.events('a', 'db.down');
    expect(down.length).toBeGreaterThan(0);
    const repaired = [...(await c.events('a', 'db.restarted')), ...(await c.events('b', 'failover')), ...(await c.events('b', 'switchover'))];
    expect(repaired.length).toBeGreaterThan(0);
  });

  it('double fault: the node that acknowledged writes alone dies; the stale node stays standby until it returns; nothing is lost', async () => {
    await c.waitFor((a, b) => !!a && !!b && (a.role === 'primary' || b.role === 'primary'), 60_000, 'a primary');
    const first = (await c.primary())!;
    const second = first === 'a' ? 'b' : 'a';
    await until(`${second} streaming`, async () => (await c.status(second))!.replication.db.streaming === true, 120_000);
    const poll = doublePrimaryPoller(c);
    const w = new DbWriter(c.dbUrl, { table: 'zl_double' });
    await w.prepare();
    w.start();
    await until('rows acknowledged', async () => w.acked.length > 30, 20_000);
    // Fault 1: the whole primary dies; the standby takes over and acknowledges writes alone.
    c.kill(first);
    c.killDb(first);
    await c.waitFor((a, b) => ({ a, b })[second]?.role === 'primary', 30_000, `${second} primary`);
    const atTakeover = w.acked.length;
    await until('writes acknowledged by the new primary alone', async () => w.acked.length > atTakeover + 50, 30_000);
    expect((await c.status(second))!.data_holders.holders).toEqual([second]);
    await w.stop();
    // Fault 2: the new primary dies too; the stale node comes back first.
    c.kill(second);
    c.killDb(second);
    c.startNode(first);
    await sleep(8_000);
    const stale = (await c.status(first))!;
    expect(stale.role).not.toBe('primary');
    expect(stale.reason).toMatch(/data-holder record names/);
    expect((await c.events(first, 'promotion_blocked')).length).toBeGreaterThan(0);
    // The holder returns: it is granted the epoch, the stale node follows it.
    c.startNode(second);
    await c.waitFor((a, b) => ({ a, b })[second]?.role === 'primary' && ({ a, b })[first]?.role === 'standby', 60_000, `${second} primary again`);
    // The role is taken before the database finished starting: read once it answers.
    let missing: number[] | null = null;
    await until(`${second}'s database answers`, async () => {
      missing = await w.missing(direct(c.nodes[second].pgPort)).catch(() => null);
      return missing !== null;
    }, 60_000, 500);
    expect(missing).toEqual([]);
    await until(`${first} streams from ${second}`, async () => (await c.status(first))!.replication.db.streaming === true, 120_000);
    const polled = await poll.done();
    expect(polled.samples).toBeGreaterThan(100);
    expect(polled.both).toBe(0);
  });
});
