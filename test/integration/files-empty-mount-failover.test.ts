/**
 * The config tree across a failover, with real processes (sidecars, witness): the standby's tree is an
 * empty mount when it becomes primary, and the returning node still has every file. Before the delete
 * guard, the new primary emptied the returning node's tree and reported "in sync"; now the returning
 * node keeps every file, the new primary holds the deletes back with a critical event and does not
 * report the tree in sync.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name));
    else if (!e.name.startsWith('.nha-tmp-')) n++;
  }
  return n;
}

async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await Promise.resolve(fn()).catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('config tree across a failover (real processes)', () => {
  it('a standby whose tree is an empty mount becomes primary and deletes none of the returning node’s files', async () => {
    const c = (cluster = new Cluster({ files: true }));
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const etcA = c.nodes.a.etcDir;
    const etcB = c.nodes.b.etcDir;
    mkdirSync(join(etcA, 'conf.d'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(etcA, i % 2 ? 'conf.d' : '', `f${String(i).padStart(3, '0')}.conf`), `value ${i}\n`);
    await until('50 files on b', () => countFiles(etcB) === 50, 20_000);

    // b goes down; its volume comes back as an empty mount; a dies; b starts first and becomes primary.
    c.kill('b', true);
    for (const name of readdirSync(etcB)) rmSync(join(etcB, name), { recursive: true, force: true });
    c.kill('a', true);
    c.startService('b');
    c.startNode('b');
    await c.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b primary');
    c.startService('a');
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'a standby of b');

    await until('delete guard event on b', async () => (await c.events('b', 'files_delete_guard')).length > 0, 30_000);
    await sleep(3000);
    expect(countFiles(etcA)).toBe(50);
    // The empty tree trips the empty-source rule; once a's merge-back has brought some files to b, a
    // pass may be refused by the fraction rule instead. Either way every refusal is critical.
    const guards = await c.events('b', 'files_delete_guard');
    const rules = guards.map((g) => (g.details as { rule?: string } | undefined)?.rule);
    expect(rules.length).toBeGreaterThan(0);
    for (const g of guards) expect(g.severity).toBe('critical');
    expect(rules.every((r) => r === 'empty-source' || r === 'fraction'), `guard rules: ${rules.join(', ')}`).toBe(true);
    const filesB = (await c.status('b'))?.replication?.files;
    const trees = JSON.stringify(filesB);
    expect(trees).toMatch(/"inSync":false/);
    expect(trees).not.toMatch(/"inSync":true/);
    const inSyncEvents = (await c.events('b')).filter((e) => /in sync/.test(e.message) && !/not in sync/.test(e.message));
    expect(inSyncEvents).toEqual([]);
  }, 120_000);
});
