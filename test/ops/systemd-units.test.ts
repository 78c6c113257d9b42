/**
 * The systemd units docs/systemd.md ships: valid (systemd-analyze verify, with a stub in place of the
 * nimbus-ha executable) and sandboxed (systemd-analyze security --offline: exposure at most 5.0 for the
 * sidecar, 3.0 for the witness). Skips with a message where systemd-analyze is not installed.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
if (!analyze) console.warn('systemd-units.test: systemd-analyze not found (Debian package systemd): skipped');
const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'systemd.md'), 'utf8');
const units = [...doc.matchAll(/```ini\n(.*?)```/gs)].map((m) => m[1]);
const dir = mkdtempSync(join(tmpdir(), 'nha-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }));
  });
}

/** The unit as the page shows it, with the executable replaced by a stub that exists here. */
function unitFile(name: string, text: string): string {
  const stub = join(dir, 'nimbus-ha');
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  const file = join(dir, name);
  writeFileSync(file, text.replaceAll('/usr/bin/nimbus-ha', stub));
  return file;
}

describe('systemd units in docs/systemd.md', () => {
  it('the page holds the sidecar and the witness unit', () => {
    expect(units).toHaveLength(2);
    expect(units[0]).toMatch(/ExecStart=\/usr\/bin\/nimbus-ha run /);
    expect(units[1]).toMatch(/ExecStart=\/usr\/bin\/nimbus-ha witness /);
  });

  it.skipIf(!analyze)('both verify, and their exposure is at most 5.0 (sidecar) and 3.0 (witness)', async () => {
    for (const [name, text, limit] of [['nimbus-ha.service', units[0], 5.0], ['nimbus-ha-witness.service', units[1], 3.0]] as const) {
      const file = unitFile(name, text);
      const verify = await run(['verify', file]);
      expect(verify.code, verify.out).toBe(0);
      const security = await run(['security', '--offline=yes', file]);
      const m = /Overall exposure level for \S+: ([0-9.]+)/.exec(security.out);
      expect(m, security.out).not.toBeNull();
      expect(Number(m![1]), `${name}: ${m![0]}`).toBeLessThanOrEqual(limit);
    }
  });
});
