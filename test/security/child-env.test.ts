import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../adapters/command/run.js';
import { ProcessSupervisor } from '../../adapters/nimbus/process-supervisor.js';
import { runCommand as runVipCommand } from '../../adapters/vip/run-command.js';
import { commandProbe } from '../../src/monitor/probes.js';
import { childEnv } from '../../src/util/child-env.js';
import { randomSecret } from './helpers.js';

const CREDENTIALS = ['NHA_SECRET', 'NHA_ADMIN_TOKEN', 'NHA_DB_SUPERUSER_PASSWORD', 'NHA_DB_REPL_PASSWORD', 'NHA_REPO_SECRET_ACCESS_KEY', 'PGPASSWORD'];
const saved: Record<string, string | undefined> = {};
const dir = mkdtempSync(join(tmpdir(), 'nha-childenv-'));
beforeAll(() => {
  for (const k of CREDENTIALS) {
    saved[k] = process.env[k];
    process.env[k] = randomSecret();
  }
});
afterAll(() => {
  for (const k of CREDENTIALS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  rmSync(dir, { recursive: true, force: true });
});
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

function leaked(envText: string): string[] {
  return CREDENTIALS.filter((k) => envText.split('\n').some((l) => l.startsWith(`${k}=`)));
}

describe('children get an allow-listed environment', () => {
  it('childEnv keeps PATH and what the caller passes, never the credentials', () => {
    const env = childEnv({ EXTRA: '1' });
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.EXTRA).toBe('1');
    for (const k of CREDENTIALS) expect(env[k]).toBeUndefined();
    expect(childEnv({}, { ...process.env, NHA_CHILD_ENV_ALLOW: 'NHA_SECRET,MY_VAR', MY_VAR: 'x' })).toMatchObject({ MY_VAR: 'x' });
    expect(childEnv({}, { ...process.env, NHA_CHILD_ENV_ALLOW: 'NHA_SECRET' }).NHA_SECRET).toBeUndefined();
  });

  it('hooks and service commands (adapters/command) do not see the credentials', async () => {
    const r = await runCommand('env', { timeoutMs: 5000 });
    expect(r.stdout).toMatch(/^PATH=/m);
    expect(leaked(r.stdout)).toEqual([]);
  });

  it('VIP commands do not see the credentials', async () => {
    const r = await runVipCommand('env', [], 5000);
    expect(r.code).toBe(0);
    expect(leaked(r.stdout)).toEqual([]);
  });

  it('command probes do not see the credentials', async () => {
    // The probe fails (exit 1) when any credential is in its environment.
    const r = await commandProbe({ command: `! env | grep -E '^(${CREDENTIALS.join('|')})='` })(5000);
    expect(r.detail).toMatch(/^exit 0/);
    expect(r.ok).toBe(true);
  });

  it('the Nimbus service process (process supervisor) does not see the credentials', async () => {
    const out = join(dir, 'nimbus-env.txt');
    const sup = new ProcessSupervisor({ command: ['/bin/sh', '-c', `env > ${out}; sleep 30`], stopTimeoutMs: 2000, startGraceMs: 200 });
    await sup.start();
    stops.push(() => sup.stop());
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^PATH=/m);
    expect(leaked(text)).toEqual([]);
  });
});
