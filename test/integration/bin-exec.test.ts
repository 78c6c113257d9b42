import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);

describe('the nimbus-ha bin', () => {
  it('the build leaves it executable, and npx runs it', () => {
    const bin = new URL('dist/src/cli/main.js', root);
    chmodSync(bin, 0o644);
    execFileSync(process.execPath, ['scripts/chmod-bins.mjs'], { cwd: root });
    expect(statSync(bin).mode & 0o111).toBe(0o111);
    const out = execFileSync('npx', ['--no-install', 'nimbus-ha', '--help'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/Usage: nimbus-ha/);
  });
});
