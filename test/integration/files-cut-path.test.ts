/**
 * File sync over redundant paths (real processes): the first path to the standby is cut (its proxy
 * drops TCP and UDP). The sender asks for the peer's URLs with the answering paths first before each
 * request, so a file written on the primary reaches the standby over the second path within seconds,
 * instead of failing on the cut path until it heals.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { sleep, until } from '../helpers/wait.js';

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('config tree over a cut path (real processes)', () => {
  it('a file written on the primary reaches the standby within a few seconds while path 0 is down', async () => {
    const c = (cluster = new Cluster({ files: true, paths: 2 }));
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const etcA = c.nodes.a.etcDir;
    const etcB = c.nodes.b.etcDir;
    writeFileSync(join(etcA, 'before.conf'), 'before\n');
    await until('first file on b', async () => existsSync(join(etcB, 'before.conf')), 20_000, 50);

    // Path 0 is cut both ways (a network path carries both directions).
    c.nodes.a.inbound[0].down();
    c.nodes.b.inbound[0].down();
    try {
      // Twice: right after the cut, and once the heartbeats have noticed it.
      for (const [i, pause] of [0, 1500].entries()) {
        await sleep(pause);
        const name = `cut-${i}.conf`;
        writeFileSync(join(etcA, name), `written while path 0 is down (${i})\n`);
        const t0 = Date.now();
        await until(`${name} on b`, async () => existsSync(join(etcB, name)) && readFileSync(join(etcB, name), 'utf8').startsWith('written'), 8_000, 50);
        const ms = Date.now() - t0;
        console.log(`${name}: on the standby after ${ms} ms with path 0 down`);
        expect(ms).toBeLessThan(5_000);
      }
      // The node is still one cluster: b is standby, not promoted.
      expect((await c.status('b'))?.role).toBe('standby');
    } finally {
      c.nodes.a.inbound[0].up();
      c.nodes.b.inbound[0].up();
    }
  }, 90_000);
});
