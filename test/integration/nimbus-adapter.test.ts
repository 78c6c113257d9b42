/**
 * NimbusServiceController against the real stand-in process (embedded PostgreSQL, s3rver): the probe goes
 * red when the process dies and green after start(); stop escalates to SIGKILL; nimbusctl mode runs the
 * control script with the right arguments.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NimbusServiceController, type NimbusControllerOptions } from '../../adapters/nimbus/controller.js';
import { createPool, ensureSchema } from '../../fixtures/nimbus-vm-service/db.js';
import { writeNimbusHome } from '../../fixtures/nimbus-vm-service/home.js';
import { createUser, type CloudUser } from '../../fixtures/nimbus-vm-service/new-user.js';
import {
  freePort,
  startCumulusStandIn,
  startEmbeddedPostgres,
  type RunningCumulus,
  type RunningPostgres,
} from '../../fixtures/nimbus-vm-service/sandbox.js';
import type { ProbeResult } from '../../src/ports.js';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
// Runs the TypeScript entry point directly, so the test does not depend on a prior build.
const VITE_NODE = join(REPO_ROOT, 'node_modules/vite-node/vite-node.mjs');

let root: string;
let home: string;
let postgres: RunningPostgres;
let cumulus: RunningCumulus;
let pool: pg.Pool;
let user: CloudUser;
let ec2Url: string;
const controllers: NimbusServiceController[] = [];

function controller(overrides: Partial<NimbusControllerOptions> = {}): NimbusServiceController {
  const c = new NimbusServiceController({
    mode: 'process',
    home,
    command: [process.execPath, VITE_NODE, 'fixtures/nimbus-vm-service/main.ts', '--home', home],
    cwd: REPO_ROOT,
    logFile: join(root, 'vm-service.log'),
    pidFile: join(home, 'var', 'run', 'vm-service.pid'),
    stopTimeoutMs: 5000,
    startGraceMs: 300,
    ec2: { url: ec2Url, credentials: { accessKeyId: user.accessId, secretAccessKey: user.secret } },
    cumulus: { url: cumulus.url, credentials: { accessKeyId: cumulus.accessKeyId, secretAccessKey: cumulus.secretAccessKey } },
    ...overrides,
  } as NimbusControllerOptions);
  controllers.push(c);
  return c;
}

/** Probes every 200 ms until the probe's ok equals `ok` (bounded by timeoutMs). */
async function probeUntil(c: NimbusServiceController, ok: boolean, timeoutMs = 30_000): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  let last: ProbeResult = { ok: !ok, latencyMs: 0, detail: 'not probed' };
  while (Date.now() < deadline) {
    last = await c.probe(2000);
    if (last.ok === ok) return last;
    await delay(200);
  }
  const log = await readFile(join(root, 'vm-service.log'), 'utf8').catch(() => '');
  throw new Error(`probe stayed ${last.ok ? 'green' : 'red'}: ${last.detail}\nservice log tail:\n${log.split('\n').slice(-15).join('\n')}`);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nimbus-adapter-'));
  await chmod(root, 0o755);
  postgres = await startEmbeddedPostgres(join(root, 'pg'));
  cumulus = await startCumulusStandIn(join(root, 's3'));
  home = join(root, 'nimbus');
  const port = await freePort();
  ec2Url = `http://127.0.0.1:${port}/`;
  await writeNimbusHome(home, {
    port,
    databaseUrl: postgres.url,
    cumulusUrl: cumulus.url,
    cumulusAccessId: cumulus.accessKeyId,
    cumulusSecret: cumulus.secretAccessKey,
  });
  pool = createPool(postgres.url);
  await ensureSchema(pool);
  user = await createUser(pool, 'nimbus-ha-probe');
});

afterAll(async () => {
  for (const c of controllers) await c.stop().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await cumulus?.stop().catch(() => undefined);
  await postgres?.stop().catch(() => undefined);
  if (root) await rm(root, { recursive: true, force: true });
});

describe('NimbusServiceController, process mode', () => {
  it('probes red before start, green after, red when the process is killed, green after start()', async () => {
    const c = controller();
    const before = await c.probe(2000);
    expect(before).toMatchObject({ ok: false });
    expect(before.detail).toContain('process not running');

    await c.start();
    const green = await probeUntil(c, true);
    expect(green.detail).toMatch(/EC2 API answered \(1 zone\); bucket Repo reachable/);
    const { pid } = await c.status();
    expect(pid).toBeGreaterThan(1);

    process.kill(Number(pid), 'SIGKILL');
    const red = await probeUntil(c, false, 10_000);
    expect(red.detail).toMatch(/process not running|ECONNREFUSED|ECONNRESET|socket hang up/);
    // The probe can fail while the killed process is still exiting (its sockets close before it is a
    // zombie); until then start() rightly sees it running. The monitor's restart stops first, which
    // waits for the same thing.
    for (const end = Date.now() + 10_000; (await c.status()).running && Date.now() < end; ) await delay(50);
    expect((await c.status()).running).toBe(false);

    await c.start();
    await probeUntil(c, true);
    expect((await c.status()).pid).not.toBe(pid);
  });

  it('finds the running service through the PID file after a sidecar restart, and stops it', async () => {
    const restarted = controller();
    const status = await restarted.status();
    expect(status.running).toBe(true);
    await restarted.start(); // already running: must not start a second copy
    expect((await restarted.status()).pid).toBe(status.pid);
    await restarted.stop();
    expect((await restarted.status()).running).toBe(false);
    await probeUntil(restarted, false, 5000);
    await restarted.stop(); // idempotent
    const log = await readFile(join(root, 'vm-service.log'), 'utf8');
    expect(log).toContain('SIGTERM: shutting down');
  });

  it('reports AuthFailure when the probe credentials are wrong', async () => {
    const c = controller();
    await c.start();
    await probeUntil(c, true);
    const wrong = controller({ ec2: { url: ec2Url, credentials: { accessKeyId: user.accessId, secretAccessKey: 'wrong' } } });
    const r = await wrong.probe(2000);
    expect(r.ok).toBe(false);
    expect(r.detail).toContain('HTTP 401 AuthFailure');
    await c.stop();
  });

  it('escalates to SIGKILL when the service ignores SIGTERM', async () => {
    const c = controller({ command: ['/bin/sh', '-c', 'trap "" TERM; sleep 60 & wait; sleep 60'], pidFile: undefined, stopTimeoutMs: 300 });
    await c.start();
    const { pid } = await c.status();
    const t0 = Date.now();
    await c.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(() => process.kill(-Number(pid), 0)).toThrow();
  });

  it('fails start() with SERVICE_FAILED when the service exits at once', async () => {
    const logFile = join(root, 'bad.log');
    // The grace must outlast a Node start on a busy machine, or the exit is seen only after start() returned.
    const c = controller({ command: [process.execPath, '-e', 'console.error("bad config: db.url missing"); process.exit(3)'], pidFile: undefined, logFile, startGraceMs: 3000 });
    await expect(c.start()).rejects.toMatchObject({ code: 'SERVICE_FAILED', message: expect.stringContaining('bad config: db.url missing') });
  });

  it('goes red with a Cumulus detail when the repository is down', async () => {
    const c = controller();
    await c.start();
    await probeUntil(c, true);
    await cumulus.stop();
    const r = await probeUntil(c, false, 10_000);
    expect(r.detail).toContain('Cumulus failed');
    await c.stop();
  });
});

describe('NimbusServiceController, nimbusctl mode', () => {
  it('starts, probes and stops the stand-in through its generated nimbusctl', async () => {
    const ctlHome = join(root, 'real-ctl-home');
    const port = await freePort();
    const restarted = await startCumulusStandIn(join(root, 's3'), 0);
    try {
      await writeNimbusHome(ctlHome, {
        port,
        databaseUrl: postgres.url,
        cumulusUrl: restarted.url,
        cumulusAccessId: restarted.accessKeyId,
        cumulusSecret: restarted.secretAccessKey,
        nimbusctlCommand: [process.execPath, VITE_NODE, join(REPO_ROOT, 'fixtures/nimbus-vm-service/main.ts')],
      });
      const c = controller({
        mode: 'nimbusctl',
        home: ctlHome,
        command: undefined,
        pidFile: undefined,
        logFile: undefined,
        ec2: { url: `http://127.0.0.1:${port}/`, credentials: { accessKeyId: user.accessId, secretAccessKey: user.secret } },
        cumulus: { url: restarted.url, credentials: { accessKeyId: restarted.accessKeyId, secretAccessKey: restarted.secretAccessKey } },
      });
      expect((await c.probe(2000)).ok).toBe(false);
      await c.start();
      await probeUntil(c, true);
      expect((await c.status()).detail).toMatch(/^nimbusctl: Nimbus services are running \(pid \d+\)$/);
      await c.stop();
      expect(await c.status()).toMatchObject({ running: false });
      await probeUntil(c, false, 5000);
      await c.stop();
    } finally {
      await restarted.stop();
    }
  });

  it('runs $NIMBUS_HOME/bin/nimbusctl <target> start|stop|status', async () => {
    const ctlHome = join(root, 'ctl-home');
    const calls = join(root, 'nimbusctl.calls');
    const script = join(ctlHome, 'bin', 'nimbusctl');
    await writeNimbusHome(ctlHome, { port: 1, databaseUrl: 'postgres://x', cumulusUrl: 'http://127.0.0.1:1', cumulusAccessId: 'a', cumulusSecret: 's' });
    await writeFile(
      script,
      [
        '#!/bin/sh',
        `echo "$*" >> '${calls}'`,
        `case "$2" in start) touch '${root}/ctl.running';; stop) rm -f '${root}/ctl.running';;`,
        `status) test -f '${root}/ctl.running' && echo "Nimbus services are running" && exit 0; echo "not running"; exit 1;; esac`,
      ].join('\n') + '\n',
    );
    await chmod(script, 0o755);
    const c = controller({ mode: 'nimbusctl', home: ctlHome, command: undefined, pidFile: undefined, logFile: undefined });
    await c.start();
    expect(await c.status()).toMatchObject({ running: true, detail: 'nimbusctl: Nimbus services are running' });
    await c.stop();
    expect(await c.status()).toMatchObject({ running: false });
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toEqual(['services start', 'services status', 'services stop', 'services status']);

    await writeFile(script, '#!/bin/sh\necho "cannot bind 8444" >&2\nexit 2\n');
    await expect(c.start()).rejects.toMatchObject({ code: 'SERVICE_FAILED', message: expect.stringContaining('cannot bind 8444') });
  });
});
