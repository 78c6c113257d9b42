/**
 * The delete guard of config-tree sync, end to end: a real FileSyncSender (chokidar on temp dirs)
 * ships to a real receiver behind the HMAC middleware on loopback. Each case is something that emptied
 * or stalled a standby before: rm -rf of the tree's contents, a replaced root, an empty mount that
 * became primary, a trickle of deletes.
 */
import { mkdir, mkdtemp, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import type { EventInput } from '../../src/events/bus.js';
import { FileSyncReceiver } from '../../src/replication/files/receiver.js';
import { filesPeerRouter } from '../../src/replication/files/router.js';
import { FileSyncSender } from '../../src/replication/files/sender.js';
import type { FilesConfig } from '../../src/replication/files/config.js';

const SECRET = 'files-guard-secret-0123456789';

interface Pair {
  base: string;
  src: string;
  dst: string;
  qdir: string;
  server: Server;
  client: PeerClient;
  receiver: FileSyncReceiver;
  sender: FileSyncSender;
  events: EventInput[];
}

const pairs: Pair[] = [];
afterEach(async () => {
  for (const p of pairs.splice(0)) {
    await p.sender.stop();
    p.client.close();
    p.server.closeAllConnections();
    await new Promise((res) => p.server.close(res));
    await rm(p.base, { recursive: true, force: true });
  }
});

type Guard = Partial<Pick<FilesConfig, 'maxDeleteFraction' | 'deletesAlwaysAllowed' | 'maxDeletesPerWindow' | 'deleteWindowMs' | 'allowEmptySource'>>;

/** A primary tree `src` and a standby tree `dst`, both seeded before the sender starts. */
async function pair(seed: { src?: number; dst?: number }, guard: Guard = {}): Promise<Pair> {
  const base = await mkdtemp(join(tmpdir(), 'nha-files-guard-'));
  const src = join(base, 'primary', 'etc');
  const dst = join(base, 'standby', 'etc');
  const qdir = join(base, 'quarantine');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  await fill(src, seed.src ?? 0);
  await fill(dst, seed.dst ?? 0);
  const events: EventInput[] = [];
  const sink = { emit: (e: EventInput) => events.push(e) };
  const receiver = new FileSyncReceiver({ trees: [{ name: 'etc', path: dst, exclude: [] }], quarantineDir: qdir, events: sink });
  const app = express();
  app.use('/peer/files', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), filesPeerRouter({ receiver }));
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const client = new PeerClient('primary', SECRET);
  const sender = new FileSyncSender({
    config: { trees: [{ name: 'etc', path: src, exclude: [] }], batchMs: 100, maxBatchMs: 300, largeFileBytes: 1024 * 1024, ...guard },
    transport: client,
    peerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    events: sink,
    retryMinMs: 100,
    retryMaxMs: 500,
    rootCheckMs: 200,
  });
  const p = { base, src, dst, qdir, server, client, receiver, sender, events };
  pairs.push(p);
  return p;
}

async function fill(dir: string, n: number, prefix = 'f'): Promise<void> {
  if (n > 0) await mkdir(join(dir, 'conf.d'), { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(join(dir, i % 2 ? 'conf.d' : '', `${prefix}${String(i).padStart(3, '0')}.conf`), `value ${i}\n`);
}

/** Files (not directories) below `dir`, temp files left out. */
async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else if (!e.name.startsWith('.nha-tmp-')) out.push(r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const guardEvents = (p: Pair) => p.events.filter((e) => e.type === 'files_delete_guard');

describe('config-tree delete guard', () => {
  it('rm -rf of the tree contents on the primary deletes nothing on the standby', async () => {
    const p = await pair({ src: 50 });
    await p.sender.start();
    await waitFor('initial copy', async () => (await files(p.dst)).length === 50);
    expect(await p.sender.drain(10_000)).toBe(true);

    for (const name of await readdir(p.src)) await rm(join(p.src, name), { recursive: true, force: true });
    // Several batch windows later the standby still has every file.
    await sleep(2500);
    expect(await files(p.dst)).toHaveLength(50);
    await waitFor('guard event', () => guardEvents(p).length > 0, 10_000);
    expect(guardEvents(p)[0]).toMatchObject({ severity: 'critical', details: { rule: 'empty-source' } });
    const st = p.sender.status();
    expect(st.deletesHeld).toBeGreaterThanOrEqual(50);
    expect(st.inSync).toBe(false);
    expect(st.lastGuard).toMatch(/held back/);

    // A file written afterwards still replicates; the held deletes stay held.
    await writeFile(join(p.src, 'new.conf'), 'new\n');
    await waitFor('new file', async () => (await files(p.dst)).includes('new.conf'));
    expect(await files(p.dst)).toHaveLength(51);
  });

  it('a replaced root directory is watched again and its files arrive', async () => {
    const p = await pair({ src: 50 });
    await p.sender.start();
    await waitFor('initial copy', async () => (await files(p.dst)).length === 50);

    await rename(p.src, `${p.src}.old`);
    await mkdir(p.src);
    await fill(p.src, 51, 'n');
    await waitFor('files of the new root', async () => (await files(p.dst)).filter((f) => /\/?n\d+\.conf$/.test(f)).length === 51, 20_000);
    expect(p.events.some((e) => e.type === 'files_root_replaced')).toBe(true);
    // The old root's 50 files are gone here; deleting all of them at once is beyond the guard.
    expect((await files(p.dst)).length).toBe(101);
    expect(guardEvents(p).some((e) => e.details?.rule === 'fraction')).toBe(true);

    // Later edits in the new root keep arriving (the new directory is really watched).
    await writeFile(join(p.src, 'later.conf'), 'later\n');
    await waitFor('later edit', async () => (await files(p.dst)).includes('later.conf'));
  });

  it('a root removed and created again at once (often with the same inode number) is watched again, round after round', async () => {
    const p = await pair({ src: 20 });
    await p.sender.start();
    await waitFor('initial copy', async () => (await files(p.dst)).length === 20);
    for (let round = 0; round < 3; round++) {
      await rm(p.src, { recursive: true });
      await mkdir(p.src);
      await writeFile(join(p.src, `round${round}.conf`), `round ${round}\n`);
      // Written after the sender had time to look: arrives only if the new directory is watched.
      await new Promise((r) => setTimeout(r, 700));
      await writeFile(join(p.src, `later${round}.conf`), `later ${round}\n`);
      await waitFor(`round ${round}`, async () => (await files(p.dst)).includes(`later${round}.conf`), 10_000);
    }
  });

  it('a directory below the root moved aside and re-created at once is watched again: later writes in it and below it arrive', async () => {
    const p = await pair({ src: 0 });
    await mkdir(join(p.src, 'sub', 'inner'), { recursive: true });
    await mkdir(join(p.src, 'empty'), { recursive: true });
    for (let i = 0; i < 30; i++) await writeFile(join(p.src, 'sub', `old${i}.conf`), `old ${i}\n`);
    for (let i = 0; i < 5; i++) await writeFile(join(p.src, 'sub', 'inner', `old${i}.conf`), `old inner ${i}\n`);
    await p.sender.start();
    await waitFor('initial copy', async () => (await files(p.dst)).length === 35);

    // In one go (no await between): the watcher takes the new directories for the old ones.
    const { mkdirSync, renameSync, writeFileSync } = await import('node:fs');
    renameSync(join(p.src, 'sub'), join(p.base, 'sub-aside'));
    mkdirSync(join(p.src, 'sub', 'inner'), { recursive: true });
    writeFileSync(join(p.src, 'sub', 'new0.conf'), 'new 0\n');
    // An empty directory replaced by an empty one: nothing inside it changes.
    renameSync(join(p.src, 'empty'), join(p.base, 'empty-aside'));
    mkdirSync(join(p.src, 'empty'));
    // Written over the next second and a half, after the watcher settled on the replaced directories.
    for (let i = 1; i <= 5; i++) {
      await sleep(300);
      await writeFile(join(p.src, 'sub', `new${i}.conf`), `new ${i}\n`);
      await writeFile(join(p.src, 'sub', 'inner', `new${i}.conf`), `new inner ${i}\n`);
      await writeFile(join(p.src, 'empty', `new${i}.conf`), `new empty ${i}\n`);
    }
    const arrived = async () => {
      const f = await files(p.dst);
      return {
        sub: f.filter((x) => /^sub\/new\d\.conf$/.test(x)).length,
        inner: f.filter((x) => /^sub\/inner\/new\d\.conf$/.test(x)).length,
        empty: f.filter((x) => /^empty\/new\d\.conf$/.test(x)).length,
      };
    };
    await waitFor('every new file', async () => JSON.stringify(await arrived()) === JSON.stringify({ sub: 6, inner: 5, empty: 5 }), 10_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(await arrived())}`);
    });
    // The old files are held back by the guard (the standby keeps them), not deleted.
    expect((await files(p.dst)).filter((f) => /old\d+\.conf$/.test(f))).toHaveLength(35);
    expect(p.events.some((e) => e.type === 'files_dir_replaced')).toBe(true);
  });

  it('a node whose tree is an empty mount becomes primary and does not delete the returning node’s files', async () => {
    // The new primary's tree is empty; the returning node (now the receiver) still has its 50 files.
    const p = await pair({ src: 0, dst: 50 });
    await p.sender.start();
    await waitFor('full pass', () => p.sender.status().passes >= 1);
    await sleep(500);
    expect(await files(p.dst)).toHaveLength(50);
    await waitFor('guard event', () => guardEvents(p).length > 0);
    expect(guardEvents(p)[0]).toMatchObject({ severity: 'critical', details: { rule: 'empty-source' } });
    const st = p.sender.status();
    expect(st.inSync).toBe(false);
    expect(st.deletesHeld).toBeGreaterThanOrEqual(50);
    expect(p.events.some((e) => /in sync/.test(e.message) && !/not in sync/.test(e.message))).toBe(false);
    expect(p.receiver.status().deletes).toBe(0);
  });

  it('a trickle of deletes stops at the window limit', async () => {
    const p = await pair({ src: 100 }, { maxDeleteFraction: 0.1, deletesAlwaysAllowed: 0, maxDeletesPerWindow: 100, deleteWindowMs: 600_000 });
    await p.sender.start();
    await waitFor('initial copy', async () => (await files(p.dst)).length === 100);
    expect(await p.sender.drain(10_000)).toBe(true);

    const all = await files(p.src);
    // 5 files every 0.6 s: each change set alone is within 10 % of the copy.
    for (let round = 0; round < 6; round++) {
      for (const f of all.slice(round * 5, round * 5 + 5)) await unlink(join(p.src, f));
      await sleep(600);
    }
    await sleep(1500);
    const left = (await files(p.dst)).length;
    expect(left).toBeGreaterThanOrEqual(90);
    expect(left).toBeLessThan(100);
    await waitFor('guard event', () => guardEvents(p).length > 0);
    expect(guardEvents(p)[0]).toMatchObject({ severity: 'critical', details: { rule: 'window' } });
    expect(p.sender.status().deletesHeld).toBe(30 - (100 - left));
  });
});

describe('quarantine retention on the receiver', () => {
  it('removes quarantine and previous-copy folders past the retention, keeps recent ones and foreign names', async () => {
    const base = await mkdtemp(join(tmpdir(), 'nha-files-retention-'));
    try {
      const root = join(base, 'etc');
      const qdir = join(base, 'quarantine');
      const id = (msAgo: number) => `${new Date(Date.now() - msAgo).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-abcdef`;
      const old = id(20 * 86_400_000);
      const recent = id(2 * 86_400_000);
      for (const d of [join(qdir, old, 'etc'), join(qdir, recent, 'etc'), join(qdir, 'previous', old, 'etc'), join(qdir, 'previous', recent, 'etc'), join(qdir, 'operator-notes')]) {
        await mkdir(d, { recursive: true });
        await writeFile(join(d, 'x.conf'), 'kept?\n');
      }
      const receiver = new FileSyncReceiver({ trees: [{ name: 'etc', path: root, exclude: [] }], quarantineDir: qdir, quarantineRetentionDays: 14 });
      await receiver.applyBatch({ tree: 'etc', entries: [{ op: 'dir', path: 'd', mode: 0o755 }] });
      expect((await readdir(qdir)).sort()).toEqual([recent, 'operator-notes', 'previous'].sort());
      expect(await readdir(join(qdir, 'previous'))).toEqual([recent]);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
