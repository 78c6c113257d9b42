import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import type { EventInput } from '../../src/events/bus.js';
import { promoteStandby, rejoinAsStandby, switchover } from '../../src/replication/db/choreography.js';
import { SyncGuard } from '../../src/replication/db/sync-guard.js';
import { client, DbFixture, q, until } from './db-fixture.js';

/** Commits one row per statement and records the ids whose commit was acknowledged. */
function startWriter(n: PostgresNode, firstId: number, maxMs = 30_000) {
  const acked: number[] = [];
  let stop = false;
  const done = (async () => {
    const c = client(n);
    try {
      await c.connect();
      const until = Date.now() + maxMs;
      for (let id = firstId; !stop && Date.now() < until; id++) {
        await c.query('insert into w (id) values ($1)', [id]);
        acked.push(id);
      }
    } catch {
      /* the primary went away: the writer stops, acked holds what was acknowledged */
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return { acked, stop: async () => ((stop = true), await done), done };
}

async function killPostmaster(n: PostgresNode): Promise<void> {
  const pid = Number((await readFile(join(n.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  process.kill(pid, 'SIGKILL');
  await until(async () => !(await n.isRunning()), 20_000, 'postmaster gone');
  // Backends notice the postmaster's death and exit; wait until none holds the port.
  await until(async () => (await q(n, 'select 1').then(() => false, () => true)), 20_000, 'port closed');
}

async function ids(n: PostgresNode): Promise<Set<number>> {
  return new Set((await q<{ id: number }>(n, 'select id from w')).map((r) => r.id));
}

describe.each(['sync', 'async'] as const)('failover, rejoin and switchover (%s)', (mode) => {
  const fx = new DbFixture();
  let alpha: PostgresNode;
  let beta: PostgresNode;
  const events: EventInput[] = [];

  beforeEach(async () => {
    await fx.setup();
    alpha = await fx.node('alpha');
    beta = await fx.node('beta');
    await alpha.init({ template: fx.template });
    await q(alpha, 'create table w (id int primary key)');
    await beta.clone(await alpha.baseBackup({ slot: beta.slotName }), alpha.endpoint(), { force: false });
  });
  afterEach(async () => fx.teardown());

  it('kill -9 under load, promote, rejoin the old primary, switch back with zero loss', async () => {
    const guard = new SyncGuard(alpha, { mode, standbyName: 'beta', onStandbyLoss: 'block', degradeAfterMs: 0 });
    expect(await guard.tick()).toBe(mode === 'sync' ? 'sync' : 'async');

    const w = startWriter(alpha, 1);
    await until(async () => w.acked.length >= 200, 30_000, '200 acknowledged commits');
    if (mode === 'async') {
      // Cut the standby off while commits go on: these acknowledged rows exist only on the primary.
      await q(beta, "alter system set primary_conninfo = ''");
      await q(beta, 'select pg_reload_conf()');
      await until(async () => (await beta.status()).streaming === false, 20_000, 'standby disconnected');
      const mark = w.acked.length;
      await until(async () => w.acked.length >= mark + 50, 20_000, '50 more commits');
    }
    await killPostmaster(alpha);
    await w.done;
    const acked = w.acked.length;

    const p = await promoteStandby(beta, { emit: (e) => events.push(e) });
    expect(p.position?.timeline).toBe(2);
    const present = await ids(beta);
    const lost = w.acked.filter((id) => !present.has(id)).length;
    console.log(`[${mode}] acked ${acked}, lost ${lost}, promote ${p.promoteMs} ms`);
    if (mode === 'sync') expect(lost).toBe(0);
    else {
      expect(lost).toBeGreaterThan(0);
      expect(lost).toBeLessThanOrEqual(acked);
    }

    const rejoin = await rejoinAsStandby(alpha, beta.endpoint(), () => beta.baseBackup({ slot: alpha.slotName }), { emit: (e) => events.push(e) });
    console.log(`[${mode}] rejoin path ${rejoin.path} in ${rejoin.durationMs} ms, diverged ${JSON.stringify(rejoin.diverged)}`);
    if (mode === 'async') {
      expect(rejoin.path).toBe('reclone');
      expect(rejoin.diverged!.bytes).toBeGreaterThan(0);
      expect((await stat(join(rejoin.keptDir!, 'PG_VERSION'))).isFile()).toBe(true);
      expect(events.map((e) => e.type)).toContain('db.diverged');
    }
    expect(await alpha.status()).toMatchObject({ mode: 'standby', streaming: true });
    await q(beta, 'insert into w (id) values (100000)');
    await until(async () => (await ids(alpha)).has(100000), 20_000, 'alpha follows beta');

    // Planned switchover back to alpha under write load: every acknowledged commit must survive.
    const w2 = startWriter(beta, 200_000);
    await until(async () => w2.acked.length >= 100, 30_000, 'commits on beta');
    const t = await switchover(beta, alpha, { catchUpTimeoutMs: 20_000, emit: (e) => events.push(e) });
    await w2.done;
    console.log(`[${mode}] switchover ${JSON.stringify(t)}`);
    const onAlpha = await ids(alpha);
    expect(w2.acked.filter((id) => !onAlpha.has(id))).toEqual([]);
    expect(t.repointed).toBe(true);
    expect(t.writeGapMs).toBeLessThan(10_000);
    expect((await alpha.status()).mode).toBe('primary');
    expect(await beta.status()).toMatchObject({ mode: 'standby', streaming: true });
    await q(alpha, 'insert into w (id) values (300000)');
    await until(async () => (await ids(beta)).has(300000), 20_000, 'beta follows alpha');
    const readOnly = await q<{ ro: string }>(alpha, 'show default_transaction_read_only');
    expect(readOnly[0]).toEqual({ default_transaction_read_only: 'off' });
  });
});

describe('a diverged former primary checked twice (a re-clone aborted in between)', () => {
  const fx = new DbFixture();
  afterEach(async () => fx.teardown());

  it('the second check still sees the WAL written after the fork (pg_control says "shut down in recovery" by then), and following is refused', async () => {
    await fx.setup();
    const alpha = await fx.node('alpha');
    const beta = await fx.node('beta');
    await alpha.init({ template: fx.template });
    await q(alpha, 'create table w (id int primary key)');
    await beta.clone(await alpha.baseBackup({ slot: beta.slotName }), alpha.endpoint(), { force: false });
    // Cut beta off, write on alpha alone: that WAL is after the fork beta's promotion makes.
    await q(beta, "alter system set primary_conninfo = ''");
    await q(beta, 'select pg_reload_conf()');
    await until(async () => (await beta.status()).streaming === false, 20_000, 'standby disconnected');
    for (let id = 1; id <= 200; id++) await q(alpha, 'insert into w (id) values ($1)', [id]);
    await killPostmaster(alpha);
    await promoteStandby(beta, {});

    const first = await alpha.localWalEnd();
    const second = await alpha.localWalEnd();
    expect(second.bytes).toBe(first.bytes);
    await expect(alpha.follow(beta.endpoint())).rejects.toMatchObject({ code: 'TIMELINE_DIVERGED' });
  });
});
