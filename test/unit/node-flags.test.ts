import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROCESS_ENV, NODE_FLAGS } from '../../src/cli/node-flags.js';

/** `NAME=value` words of PROCESS_ENV, as the executable's first line and the container wrapper pass them. */
const nodeEnvWords = (): string => Object.entries(PROCESS_ENV).map(([k, v]) => `${k}=${v}`).join(' ');

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

describe('node flags of the long-running processes', () => {
  it('the executable, the container wrapper and the cluster fixture pass the same flags and environment', () => {
    expect(NODE_FLAGS.length).toBeGreaterThan(0);
    expect(nodeEnvWords()).toBe('MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536');
    const shebang = read('src/cli/main.ts').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S ${nodeEnvWords()} node ${NODE_FLAGS.join(' ')}`);
    expect(read('compose/Dockerfile')).toContain(`exec env ${nodeEnvWords()} node ${NODE_FLAGS.join(' ')} /app/dist/src/cli/main.js`);
    expect(read('fixtures/cluster.ts')).toMatch(/const nha = args\[0\] === cliPath;/);
    expect(read('fixtures/cluster.ts')).toMatch(/\[\.\.\.\(nha \? NODE_FLAGS : \[\]\)/);
    expect(read('fixtures/cluster.ts')).toMatch(/\.\.\.\(nha \? PROCESS_ENV : \{\}\)/);
  });

  it('the built executable starts node with them', async () => {
    const { spawnSync } = await import('node:child_process');
    const { chmodSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    // The executable's own first line, on a script that reports what it got.
    const dir = mkdtempSync(join(tmpdir(), 'nha-shebang-'));
    try {
      const script = join(dir, 'probe.mjs');
      writeFileSync(script, `${read('src/cli/main.ts').split('\n')[0]}\nconsole.log(JSON.stringify({ env: process.env.MALLOC_ARENA_MAX, mmap: process.env.MALLOC_MMAP_THRESHOLD_, argv: process.execArgv }));\n`);
      chmodSync(script, 0o755);
      const r = spawnSync(script, [], { encoding: 'utf8', env: { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env.PATH ?? ''}` } });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ env: PROCESS_ENV.MALLOC_ARENA_MAX, mmap: PROCESS_ENV.MALLOC_MMAP_THRESHOLD_, argv: [...NODE_FLAGS] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('are flags this node accepts', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [...NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
