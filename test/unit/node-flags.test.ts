import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

describe('node flags of the long-running processes', () => {
  it('the executable, the container wrapper and the cluster fixture pass the same flags', () => {
    expect(NODE_FLAGS.length).toBeGreaterThan(0);
    const shebang = read('src/cli/main.ts').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    expect(read('compose/Dockerfile')).toContain(`exec node ${NODE_FLAGS.join(' ')} /app/dist/src/cli/main.js`);
    expect(read('fixtures/cluster.ts')).toMatch(/args\[0\] === cliPath \? NODE_FLAGS/);
  });

  it('are flags this node accepts', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [...NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
