/**
 * Config tree: a delete acknowledged on the new primary while the old one was away stays deleted when the
 * old primary rejoins (real processes: sidecars, witness). a is primary and holds two files b never
 * received: a new content of x.conf (b holds the old one) and the new file keep.conf; a is killed -9 in
 * the same turn of the event loop. b takes over; x.conf is removed from b's tree (`rm`), and b's sidecar
 * restarts (kill -9, started again: it is promoted anew) before a comes back. When a rejoins, keep.conf
 * (never deleted) is merged back as before; x.conf is not brought back to b, a keeps its copy in
 * quarantine, and an event lists the path.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { sleep, until } from '../helpers/wait.js';

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');
const fileMd5 = (p: string) => (existsSync(p) ? md5(readFileSync(p)) : null);

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('config tree: deletes on the primary survive a merge-back (real processes)', () => {
  it('a file deleted on the new primary while the old one was away is not merged back; a file never deleted is', async () => {
    const c = (cluster = new Cluster({ files: true }));
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const etc = { a: c.nodes.a.etcDir, b: c.nodes.b.etcDir };
    writeFileSync(join(etc.a, 'x.conf'), 'x as both nodes had it\n');
    writeFileSync(join(etc.a, 'base.conf'), 'base\n');
    await until('x.conf on b', async () => fileMd5(join(etc.b, 'x.conf')) === md5('x as both nodes had it\n') && existsSync(join(etc.b, 'base.conf')), 20_000);
    await sleep(300);

    // a's last writes and its death in the same turn: neither reaches b.
    const xOnA = 'x as a wrote it last\n';
    const keep = 'keep.conf only a has\n';
    writeFileSync(join(etc.a, 'x.conf'), xOnA);
    writeFileSync(join(etc.a, 'keep.conf'), keep);
    c.kill('a', true);
    await c.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b primary');
    expect(fileMd5(join(etc.b, 'x.conf'))).toBe(md5('x as both nodes had it\n'));
    expect(existsSync(join(etc.b, 'keep.conf'))).toBe(false);

    // The operator removes x.conf on the primary; then b's sidecar restarts and is promoted again.
    rmSync(join(etc.b, 'x.conf'));
    await sleep(1_500);
    c.kill('b');
    await sleep(300);
    c.startNode('b');
    await c.waitFor((_a, b) => b?.role === 'primary', 60_000, 'b primary again after its restart');

    // a rejoins.
    c.startService('a');
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 60_000, 'a standby of b');
    await until('merge-back done on a', async () => (await c.events('a', 'files_merge_done')).length > 0, 60_000);
    await until('a in sync', async () => (await c.status('b'))?.replication?.files?.filesBehind === 0, 20_000);
    await sleep(1_500);

    // Control: the file never deleted is on the primary (and back on a).
    expect(fileMd5(join(etc.b, 'keep.conf'))).toBe(md5(keep));
    expect(fileMd5(join(etc.a, 'keep.conf'))).toBe(md5(keep));
    // The deleted one is not back, on either node.
    expect(existsSync(join(etc.b, 'x.conf'))).toBe(false);
    expect(existsSync(join(etc.a, 'x.conf'))).toBe(false);
    // a's copy is kept in its quarantine, and an event names the path.
    const qdir = join(c.nodes.a.dataDir, 'quarantine', 'files');
    const inQuarantine = readdirSync(qdir).filter((id) => !id.startsWith('.') && id !== 'previous' && fileMd5(join(qdir, id, 'etc', 'x.conf')) === md5(xOnA));
    expect(inQuarantine.length).toBe(1);
    const gone = await c.events('a', 'files_merge_deleted_on_primary');
    expect(gone.flatMap((e) => e.details.paths)).toEqual(['etc/x.conf']);
    expect(gone[0].message).toMatch(/deleted on the primary after this node left: kept in quarantine, not merged/);
  }, 240_000);
});
