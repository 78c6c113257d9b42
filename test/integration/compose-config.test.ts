import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { clusterConfigSchema } from '../../src/config/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const composeFile = join(root, 'compose', 'docker-compose.yml');

/** `docker-compose` (v1) or `docker compose` (v2 plugin), whichever validates here; null when neither. */
function composeCommand(): string[] | null {
  for (const cmd of [['docker-compose'], ['docker', 'compose']]) {
    try {
      execFileSync(cmd[0], [...cmd.slice(1), 'version'], { stdio: 'ignore', timeout: 20_000 });
      return cmd;
    } catch {
      /* try the next one */
    }
  }
  return null;
}

const compose = composeCommand();
const hasHaproxy = (() => {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasHaproxy) console.warn('skipping `haproxy -c`: haproxy is not installed');
if (!compose) console.warn('skipping compose validation: neither docker-compose nor `docker compose` is installed (scripts/install-system-deps.sh installs it)');

describe('compose stack', () => {
  it.skipIf(!compose)('docker-compose.yml is valid (config -q)', async () => {
    const [file, ...pre] = compose as string[];
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      const env = { ...process.env, NHA_SECRET: randomBytes(32).toString('base64url'), NHA_ADMIN_TOKEN: randomBytes(32).toString('base64url'), NHA_DATA_SECRET: randomBytes(32).toString('base64url') };
      execFile(file, [...pre, '-f', composeFile, 'config', '-q'], { timeout: 60_000, env }, (err, _out, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    expect(result.stderr.trim()).toBe('');
    expect(result.code).toBe(0);
  });

  it.each(['a', 'b'])('node %s config passes the nimbus-ha schema and cross-checks', (node) => {
    const text = readFileSync(join(root, 'compose', 'config', `${node}.yaml`), 'utf8');
    const r = parseConfigText(text, clusterConfigSchema, {
      env: { NHA_SECRET: randomBytes(32).toString('base64url'), NHA_ADMIN_TOKEN: randomBytes(32).toString('base64url'), NHA_DATA_SECRET: randomBytes(32).toString('base64url') },
      crossChecks: [clusterCrossChecks],
    });
    expect(r.problems).toEqual([]);
    expect(r.config?.node).toBe(node);
    expect(r.config?.peers[0].urls).toHaveLength(2);
  });

  it.skipIf(!hasHaproxy)('haproxy.cfg passes `haproxy -c`', () => {
    const out = execFileSync('haproxy', ['-c', '-f', join(root, 'compose', 'haproxy.cfg')], { encoding: 'utf8', stdio: 'pipe' });
    expect(out).toMatch(/Configuration file is valid/);
  });

  it('HAProxy checks HEAD /primary on each sidecar with the documented timings', () => {
    const cfg = readFileSync(join(root, 'compose', 'haproxy.cfg'), 'utf8');
    expect(cfg).toMatch(/http-check send meth HEAD uri \/primary/);
    expect(cfg).toMatch(/default-server inter 500ms fastinter 250ms downinter 250ms fall 2 rise 2\n/);
    expect(cfg).toMatch(/server a 10\.0\.1\.31:5432 .* on-marked-down shutdown-sessions/);
    expect(cfg).toMatch(/http-request lua\.nimbus_ha_wait_for_server vm_primary 10000 if { nbsrv\(vm_primary\) eq 0 }/);
    expect(cfg).toMatch(/lua-load nimbus-ha\.lua/);
    expect(cfg).toMatch(/server a \S+ check addr 10\.0\.1\.11 port 8700/);
    expect(cfg).toMatch(/server b \S+ check addr 10\.0\.1\.12 port 8700/);
  });
});
