import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import { HaError } from '../../src/errors.js';
import { switchover } from '../../src/replication/db/choreography.js';
import { DbFixture, q, until } from './db-fixture.js';

describe('PostgreSQL clone and streaming (two embedded clusters on loopback)', () => {
  const fx = new DbFixture();
  let primary: PostgresNode;
  let standby: PostgresNode;

  beforeAll(async () => {
    await fx.setup();
    primary = await fx.node('alpha');
    standby = await fx.node('beta');
    await primary.init({ template: fx.template });
    await q(primary, 'create table t (id int primary key, v text)');
    await q(primary, "insert into t select g, 'before clone' from generate_series(1, 100) g");
  });
  afterAll(async () => fx.teardown());

  it('clones with the backup API and streams new rows', async () => {
    const backup = await primary.baseBackup({ slot: standby.slotName });
    const res = await standby.clone(backup, primary.endpoint(), { force: false });
    expect(res.files).toBeGreaterThan(100);
    expect(res.keptDir).toBeNull();
    const s = await standby.status();
    expect(s).toMatchObject({ running: true, mode: 'standby', streaming: true });
    await q(primary, "insert into t select g, 'after clone' from generate_series(101, 150) g");
    await until(async () => (await q<{ n: string }>(standby, 'select count(*) as n from t'))[0].n === '150', 20_000, 'rows on the standby');
    const reps = await primary.replicas();
    expect(reps).toEqual([expect.objectContaining({ name: 'beta', state: 'streaming' })]);
    const slots = await primary.slots();
    expect(slots).toEqual([expect.objectContaining({ name: 'beta', active: true })]);
    const ps = await primary.status();
    expect(ps.mode).toBe('primary');
    expect(ps.position?.timeline).toBe(1);
    await until(async () => (await standby.status()).lagBytes === 0, 10_000, 'standby caught up');
    expect((await standby.status()).lagMs).toBe(0);
  });

  it('refuses to clone into a non-empty directory without force', async () => {
    const backup = await primary.baseBackup();
    const err = await standby.clone(backup, primary.endpoint(), { force: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('CLONE_TARGET_NOT_EMPTY');
    expect((await standby.status()).streaming).toBe(true);
  });

  it('aborts a switchover whose standby does not catch up, and unfences the primary', async () => {
    await q(standby, 'select pg_wal_replay_pause()');
    try {
      await q(primary, "insert into t values (9999, 'not replayed yet')");
      const err = await switchover(primary, standby, { catchUpTimeoutMs: 1_500 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HaError);
      expect((err as HaError).code).toBe('SWITCHOVER_REFUSED');
      expect((await primary.status()).mode).toBe('primary');
      await q(primary, "insert into t values (10000, 'writes work again')");
      expect((await standby.status()).mode).toBe('standby');
    } finally {
      await q(standby, 'select pg_wal_replay_resume()');
    }
    await until(async () => (await q(standby, 'select 1 from t where id = 10000')).length === 1, 20_000, 'replay resumed');
  });

  it('reports a wrong replication password clearly and deletes nothing', async () => {
    const intruder = await fx.node('gamma', { replicationPassword: 'wrong-password' });
    const dir = intruder.dataDir;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'precious.txt'), 'keep me');
    const backup = await primary.baseBackup();
    const err = await intruder.clone(backup, primary.endpoint(), { force: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('DB_AUTH_FAILED');
    expect((err as HaError).message).toMatch(/authentication refused/);
    expect((err as HaError).message).not.toContain('wrong-password');
    expect(await readdir(dir)).toEqual(['precious.txt']);
    const siblings = await readdir(join(dir, '..'));
    expect(siblings.filter((s) => s.includes('.old-'))).toEqual([]);
  });
});
