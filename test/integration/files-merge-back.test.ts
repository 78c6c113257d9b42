/**
 * Merge-back of the config tree after a double fault (real processes: sidecars, witness). a is primary;
 * kill -9 a; b takes over and files are written into b's tree; a restarts as standby and b is killed
 * -9 two seconds later, right after a burst of files written into its tree, so b's last files never reach
 * a; a is primary again. When b rejoins as standby
 * it must send a the files it wrote as primary that a lacks: an independent writer records every file
 * it wrote (and its MD5) while the node answered /primary 200, and every one of them must end up on the
 * primary. A path a holds with other content keeps a's version (b's is kept in quarantine, with an
 * event naming the path); a file a deleted while b was away does not come back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { sleep, until } from '../helpers/wait.js';

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

interface Rec {
  node: 'a' | 'b';
  path: string;
  md5: string;
  at: number;
}

/** Writes a new file every few ms into the tree of whichever node answers /primary 200 just before. */
class TreeWriter {
  readonly recs: Rec[] = [];
  private seq = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly c: Cluster) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        for (const n of ['a', 'b'] as const) {
          if (this.stopped) break;
          const ok = await this.c
            .request(n, '/primary', { timeoutMs: 300 })
            .then((r) => r.status === 200)
            .catch(() => false);
          if (!ok) continue;
          const i = this.seq++;
          const rel = `d${i % 4}/w-${String(i).padStart(5, '0')}-${n}.conf`;
          const body = `${n} ${i} ${randomBytes(12).toString('hex')}\n`;
          mkdirSync(join(this.c.nodes[n].etcDir, `d${i % 4}`), { recursive: true });
          writeFileSync(join(this.c.nodes[n].etcDir, rel), body);
          this.recs.push({ node: n, path: rel, md5: md5(body), at: Date.now() });
        }
        await sleep(40);
      }
    })();
  }

  /** Writes `n` new files into `node`'s tree at once (synchronously) and records them. */
  burst(node: 'a' | 'b', n: number): void {
    for (let k = 0; k < n; k++) {
      const i = this.seq++;
      const rel = `d${i % 4}/w-${String(i).padStart(5, '0')}-${node}.conf`;
      const body = `${node} ${i} ${randomBytes(12).toString('hex')}\n`;
      mkdirSync(join(this.c.nodes[node].etcDir, `d${i % 4}`), { recursive: true });
      writeFileSync(join(this.c.nodes[node].etcDir, rel), body);
      this.recs.push({ node, path: rel, md5: md5(body), at: Date.now() });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  count(n: 'a' | 'b'): number {
    return this.recs.filter((r) => r.node === n).length;
  }
}

function filesBelow(dir: string, rel = ''): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesBelow(dir, r));
    else if (!e.name.startsWith('.nha-tmp-')) out.push(r);
  }
  return out;
}

const fileMd5 = (p: string) => (existsSync(p) ? md5(readFileSync(p)) : null);

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('config tree: merge-back after a double fault (real processes)', () => {
  it('files the old primary wrote and never shipped reach the primary when it rejoins; conflicts keep the primary’s version; deletes stay deleted', async () => {
    const c = (cluster = new Cluster({ files: true }));
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const etc = { a: c.nodes.a.etcDir, b: c.nodes.b.etcDir };
    const w = new TreeWriter(c);
    w.start();
    await until('files written on a', async () => w.count('a') >= 20, 20_000, 50);

    // kill -9 a; b takes over and gets writes.
    c.kill('a', true);
    await c.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b primary');
    await until('files written on b', async () => w.count('b') >= 40, 30_000, 50);

    // a comes back as standby; two seconds later b dies: b's last files never reached a.
    c.startService('a');
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'a standby of b');
    await sleep(2_000);
    // The last files b acknowledges are written and b is killed in the same turn of the event loop, so
    // however fast the sender ships, some of b's files never reach a.
    expect((await c.request('b', '/primary', { timeoutMs: 2_000 })).status).toBe(200);
    w.burst('b', 8);
    c.kill('b', true);
    const onB = w.recs.filter((r) => r.node === 'b');
    await c.waitFor((a) => a?.role === 'primary', 30_000, 'a primary again');
    const unshipped = onB.filter((r) => !existsSync(join(etc.a, r.path)));
    const shipped = onB.filter((r) => existsSync(join(etc.a, r.path)));
    console.log(`b wrote ${onB.length} file(s) as primary; ${unshipped.length} never reached a`);
    expect(unshipped.length).toBeGreaterThan(0);

    // While b is away, a writes over one of b's unshipped paths (a conflict) and deletes one of b's
    // files it did receive.
    const conflict = unshipped[0];
    const mine = `a's own version of ${conflict.path}\n`;
    mkdirSync(join(etc.a, conflict.path, '..'), { recursive: true });
    writeFileSync(join(etc.a, conflict.path), mine);
    const deleted = shipped.at(-1) ?? null;
    if (deleted) rmSync(join(etc.a, deleted.path));
    const aBefore = w.count('a');
    await until('files written on a again', async () => w.count('a') >= aBefore + 15, 30_000, 50);
    await sleep(500);

    // b rejoins as standby.
    c.startService('b');
    c.startNode('b');
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'b standby of a');
    // (Checked after the files: without merge-back there is no such event, and the files tell why.)
    const mergeDone = await until('merge-back done on b', async () => (await c.events('b', 'files_merge_done')).length > 0, 45_000).then(
      () => true,
      () => false,
    );
    await w.stop();
    await until('a in sync with b', async () => (await c.status('a'))?.replication?.files?.filesBehind === 0, 20_000);
    await sleep(1_500);

    // Every acknowledged file is on the primary with its content (the conflict: a's version; the
    // deleted one: gone).
    const latest = new Map<string, Rec>();
    for (const r of w.recs) latest.set(r.path, r);
    const missing: string[] = [];
    for (const r of latest.values()) {
      if (r.path === conflict.path || r.path === deleted?.path) continue;
      if (fileMd5(join(etc.a, r.path)) !== r.md5) missing.push(`${r.node}:${r.path}`);
    }
    console.log(`acknowledged files: ${latest.size}; missing on the primary: ${missing.length}`);
    expect(missing).toEqual([]);
    expect(readFileSync(join(etc.a, conflict.path), 'utf8')).toBe(mine);
    expect(mergeDone).toBe(true);
    expect((await c.status('b'))?.replication?.files?.caughtUp).toBe(true);
    if (deleted) expect(existsSync(join(etc.a, deleted.path))).toBe(false);

    // b's version of the conflicting path is kept in b's quarantine, and an event names it.
    const qdir = join(c.nodes.b.dataDir, 'quarantine', 'files');
    await until('b’s version of the conflict in quarantine', async () => {
      for (const id of readdirSync(qdir)) {
        if (id.startsWith('.') || id === 'previous') continue;
        if (fileMd5(join(qdir, id, 'etc', conflict.path)) === conflict.md5) return true;
      }
      return false;
    }, 20_000);
    const conflicts = await c.events('b', 'files_merge_conflicts');
    expect(conflicts.flatMap((e) => e.details.paths)).toContain(`etc/${conflict.path}`);
    if (deleted) {
      const gone = await c.events('b', 'files_merge_deleted_on_primary');
      expect(gone.flatMap((e) => e.details.paths)).toContain(`etc/${deleted.path}`);
    }
    // The standby ends with the primary's tree.
    await until('b holds the primary’s tree', async () => JSON.stringify(filesBelow(etc.b).sort()) === JSON.stringify(filesBelow(etc.a).sort()), 30_000);
  }, 240_000);
});
