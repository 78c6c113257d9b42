/**
 * The status path a sidecar runs every second: the read-only status queries share one kept-open session
 * that survives server restarts; without a live session, `isRunning` reads postmaster.pid instead of
 * starting pg_ctl.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import { embeddedBinDir, postmasterAlive, run } from '../../adapters/postgres/proc.js';
import { DbFixture, q, until } from './db-fixture.js';

/** pg_ctl's own verdict, run as the server's user like the adapter does. */
async function pgCtlSaysRunning(n: PostgresNode): Promise<boolean> {
  const { resolveOsUser } = await import('../../adapters/postgres/proc.js');
  const r = await run(join(embeddedBinDir(), 'pg_ctl'), ['status', '-D', n.dataDir], { user: await resolveOsUser('postgres'), timeoutMs: 10_000 });
  return r.code === 0;
}

async function statusSessions(n: PostgresNode): Promise<{ pid: number; backend_start: string }[]> {
  return q<{ pid: number; backend_start: string }>(n, "select pid, backend_start::text from pg_stat_activity where application_name = 'nimbus-ha' order by pid");
}

describe('PostgreSQL status session', () => {
  const fx = new DbFixture();
  let node: PostgresNode;

  beforeAll(async () => {
    await fx.setup();
    node = await fx.node('solo');
    await node.init({ template: fx.template });
  }, 120_000);
  afterAll(async () => fx.teardown());

  it('tells running from stopped the way pg_ctl status does', async () => {
    expect(await node.isRunning()).toBe(true);
    expect(await pgCtlSaysRunning(node)).toBe(true);
    expect(await postmasterAlive(node.dataDir)).toBe(true);
    await node.stop('fast');
    expect(await node.isRunning()).toBe(false);
    expect(await pgCtlSaysRunning(node)).toBe(false);
    await node.start();
    expect(await node.isRunning()).toBe(true);
  }, 60_000);

  it('reuses one session for repeated status reads', async () => {
    await node.status();
    const first = await statusSessions(node);
    expect(first).toHaveLength(1);
    for (let i = 0; i < 20; i++) {
      const s = await node.status();
      expect(s).toMatchObject({ running: true, mode: 'primary' });
    }
    await node.replicas();
    await node.slots();
    expect(await statusSessions(node)).toEqual(first);
  }, 60_000);

  it('answers the first status read after the server was killed and restarted behind its back', async () => {
    await node.status(); // the kept-open session exists
    const pid = Number((await readFile(join(node.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(pid, 'SIGKILL');
    await until(async () => !(await node.isRunning()), 20_000, 'postmaster gone');
    expect(await node.status()).toMatchObject({ running: false, mode: 'stopped' });
    await until(async () => (await q(node, 'select 1').then(() => false, () => true)), 20_000, 'old backends gone');
    await node.start();
    // The old session died with the server: the read must not surface that as an error.
    expect(await node.status()).toMatchObject({ running: true, mode: 'primary' });
    expect(await statusSessions(node)).toHaveLength(1);
  }, 90_000);
});

describe('postmasterAlive', () => {
  const fx = new DbFixture();
  let dir = '';
  beforeAll(async () => {
    await fx.setup();
    dir = fx.root;
  });
  afterAll(async () => fx.teardown());

  const withPid = async (firstLine: string) => {
    await writeFile(join(dir, 'postmaster.pid'), `${firstLine}\n${dir}\n1700000000\n5432\n`);
    return postmasterAlive(dir);
  };

  it('follows pg_ctl: a live PID runs, a dead or empty one does not, unreadable data is left to pg_ctl', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      expect(await withPid(String(child.pid))).toBe(true);
      expect(await withPid(`-${child.pid}`)).toBe(true); // single-user backend
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    expect(await withPid(String(child.pid))).toBe(false);
    expect(await withPid(String(process.pid))).toBe(false); // never ourselves
    expect(await withPid('')).toBe(false);
    expect(await withPid('not-a-pid')).toBeNull();
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'postmaster.pid'));
    expect(await postmasterAlive(dir)).toBe(false);
  });
});
