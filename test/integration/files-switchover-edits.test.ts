/**
 * A planned switchover, then the new primary edits files the old primary wrote (and shipped) while it
 * was primary. The old primary, now standby, must take those edits like any update from its primary:
 * its own earlier copies were on the peer already, so they are not local changes and must not be moved
 * into quarantine (before, every such edit quarantined a copy and raised files_quarantined, once per file,
 * after every switchover).
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { until, upAndPrimary } from '../helpers/wait.js';

const FILES = 5;
const read = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};

describe('config tree: edits after a switchover', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ files: true });
    await upAndPrimary(c);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('the new primary edits files the old primary wrote: the new standby applies them without quarantining its earlier copies', async () => {
    const rels = Array.from({ length: FILES }, (_, i) => `sw/e-${i}.conf`);
    mkdirSync(join(c.nodes.a.etcDir, 'sw'), { recursive: true });
    for (const [i, rel] of rels.entries()) writeFileSync(join(c.nodes.a.etcDir, rel), `written on a as primary ${i}\n`);
    await until('a\'s files on b', async () => rels.every((rel, i) => read(join(c.nodes.b.etcDir, rel)) === `written on a as primary ${i}\n`), 20_000);

    // A refusal is retryable (409 REQUEST_REFUSED: a planned move or an escalation still running on a
    // loaded machine); this test is about the files, so it asks again, and says why it had to.
    const refusals: string[] = [];
    await until('the switchover accepted', async () => {
      const sw = await c.admin('a', '/admin/switchover', { to: 'b' });
      if (sw.status === 409) refusals.push(String(sw.data?.message));
      else expect(sw.status, JSON.stringify(sw.data)).toBe(202);
      return sw.status === 202;
    }, 20_000);
    if (refusals.length) console.log(`switchover refused ${refusals.length} time(s) first: ${refusals[0]}`);
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'b primary, a standby');
    await until('merge-back done on a', async () => (await c.events('a', 'files_merge_done')).length > 0, 30_000);
    const quarantinedBefore = (await c.events('a', 'files_quarantined')).length;

    for (const [i, rel] of rels.entries()) writeFileSync(join(c.nodes.b.etcDir, rel), `edited on b as primary ${i}\n`);
    await until('b\'s edits on a', async () => rels.every((rel, i) => read(join(c.nodes.a.etcDir, rel)) === `edited on b as primary ${i}\n`), 20_000);

    expect((await c.events('a', 'files_quarantined')).length).toBe(quarantinedBefore);
    expect(await c.events('a', 'files_merge_conflicts')).toEqual([]);
  });
});
