/**
 * End to end: a real FileSyncSender (chokidar on temp dirs) ships to a real receiver behind the real
 * HMAC middleware on loopback. Each case waits for the standby's tree to match, within bounded time.
 */
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
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

const SECRET = 'files-sync-secret';

interface Rig {
  base: string;
  src: string;
  dst: string;
  qdir: string;
  url: string;
  server: Server;
  receiver: FileSyncReceiver;
  sender: FileSyncSender;
  client: PeerClient;
  events: EventInput[];
  requests: string[];
  /** Paths the sender reported gone on this node (onGone), in order. */
  gone: string[];
  listen(port?: number): Promise<void>;
}

const rigs: Rig[] = [];

async function rig(opts: { largeFileBytes?: number; seed?: (src: string, dst: string) => Promise<void>; exclude?: string[]; fullPassIntervalMs?: number } = {}): Promise<Rig> {
  const base = await mkdtemp(join(tmpdir(), 'nha-files-sync-'));
  const src = join(base, 'primary', 'etc');
  const dst = join(base, 'standby', 'etc');
  const qdir = join(base, 'quarantine');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  await opts.seed?.(src, dst);
  const events: EventInput[] = [];
  const requests: string[] = [];
  const receiver = new FileSyncReceiver({ trees: [{ name: 'etc', path: dst, exclude: opts.exclude ?? [] }], quarantineDir: qdir, events: { emit: (e) => events.push(e) } });
  const app = express();
  app.use((req, _res, next) => {
    requests.push(`${req.method} ${req.path}`);
    next();
  });
  app.use('/peer/files', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), filesPeerRouter({ receiver }));
  const client = new PeerClient('primary', SECRET);
  const r: Rig = {
    base, src, dst, qdir, url: '', server: null as unknown as Server, receiver, client, events, requests, gone: [],
    sender: null as unknown as FileSyncSender,
    async listen(port = 0) {
      r.server = await new Promise<Server>((resolve, reject) => {
        const s = app.listen(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
      r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    },
  };
  await r.listen();
  r.sender = new FileSyncSender({
    config: { trees: [{ name: 'etc', path: src, exclude: opts.exclude ?? [] }], batchMs: 100, maxBatchMs: 300, largeFileBytes: opts.largeFileBytes ?? 1024 * 1024, ...(opts.fullPassIntervalMs !== undefined ? { fullPassIntervalMs: opts.fullPassIntervalMs } : {}) },
    transport: client,
    peerUrl: r.url,
    events: { emit: (e) => events.push(e) },
    retryMinMs: 100,
    retryMaxMs: 500,
    onGone: (tree, rel) => r.gone.push(`${tree}/${rel}`),
  });
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.sender.stop();
    r.client.close();
    await new Promise((res) => (r.server.listening ? r.server.close(res) : res(undefined)));
    await rm(r.base, { recursive: true, force: true });
  }
});

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await cond()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** Quarantine event directories (the hidden state file is not one). */
const quarantined = async (qdir: string) => (await readdir(qdir).catch(() => [] as string[])).filter((n) => !n.startsWith('.') && n !== 'previous');
const content = (p: string) => readFile(p, 'utf8').catch(() => null);
const exists = (p: string) => lstat(p).then(() => true, () => false);

/** Recursive listing with type, content hash-free: enough to compare two small trees. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const abs = join(d, e.name);
      const st = await lstat(abs);
      if (e.isSymbolicLink()) out[r] = `link:${await readlink(abs)}`;
      else if (e.isDirectory()) {
        out[r] = `dir:${(st.mode & 0o7777).toString(8)}`;
        await walk(abs, r);
      } else out[r] = `file:${(st.mode & 0o7777).toString(8)}:${Math.floor(st.mtimeMs)}:${await readFile(abs, 'utf8')}`;
    }
  };
  await walk(dir, '');
  return out;
}

describe('file-tree sync, primary to standby', () => {
  it('replicates create, modify, rename, delete, mode and mtime changes, directories and links', async () => {
    const r = await rig();
    await r.sender.start();
    await writeFile(join(r.src, 'a.conf'), 'one\n');
    await mkdir(join(r.src, 'conf.d'));
    await writeFile(join(r.src, 'conf.d', 'b.conf'), 'bee\n');
    await waitFor('create', async () => (await content(join(r.dst, 'conf.d', 'b.conf'))) === 'bee\n' && (await content(join(r.dst, 'a.conf'))) === 'one\n');

    await writeFile(join(r.src, 'a.conf'), 'two\n');
    await waitFor('modify', async () => (await content(join(r.dst, 'a.conf'))) === 'two\n');

    await rename(join(r.src, 'conf.d', 'b.conf'), join(r.src, 'conf.d', 'c.conf'));
    await waitFor('rename', async () => !(await exists(join(r.dst, 'conf.d', 'b.conf'))) && (await content(join(r.dst, 'conf.d', 'c.conf'))) === 'bee\n');

    await readFile(join(r.src, 'a.conf')); // atime after mtime: chokidar alone would miss the chmod
    await chmod(join(r.src, 'a.conf'), 0o600);
    await waitFor('mode', async () => ((await stat(join(r.dst, 'a.conf'))).mode & 0o777) === 0o600);

    const past = new Date('2020-01-02T03:04:05.678Z');
    await utimes(join(r.src, 'a.conf'), past, past);
    await waitFor('mtime', async () => Math.abs((await stat(join(r.dst, 'a.conf'))).mtimeMs - past.getTime()) < 1);

    await symlink('conf.d/c.conf', join(r.src, 'current'));
    await symlink(join(r.src, 'a.conf'), join(r.src, 'abs-inside'));
    await symlink('/etc/passwd', join(r.src, 'escapes'));
    await waitFor('links', async () => (await readlink(join(r.dst, 'current').toString()).catch(() => '')) === 'conf.d/c.conf' && (await readlink(join(r.dst, 'abs-inside')).catch(() => '')) === 'a.conf');
    expect(await exists(join(r.dst, 'escapes'))).toBe(false);
    expect(r.events.some((e) => e.type === 'files_link_skipped')).toBe(true);

    await unlink(join(r.src, 'conf.d', 'c.conf'));
    await rm(join(r.src, 'conf.d'), { recursive: true });
    await waitFor('delete', async () => !(await exists(join(r.dst, 'conf.d'))));

    // The escaping link is not synced; the absolute link inside the tree arrives relative.
    const { escapes: _skipped, ...expected } = await snapshot(r.src);
    expected['abs-inside'] = 'link:a.conf';
    await waitFor('trees equal', async () => JSON.stringify(await snapshot(r.dst)) === JSON.stringify(expected)).catch(async (err) => {
      expect(await snapshot(r.dst)).toEqual(expected);
      throw err;
    });
    expect(await quarantined(r.qdir)).toEqual([]);
    const s = r.sender.status();
    expect(s.lastError).toBeNull();
    expect(s.lastShipMs).not.toBeNull();
    expect(s.passes).toBeGreaterThanOrEqual(1);
  });

  it('delivers a burst of 1,000 changes complete', async () => {
    const r = await rig({ exclude: ['*.swp'] });
    await r.sender.start();
    await mkdir(join(r.src, 'many'));
    for (let i = 0; i < 1000; i++) await writeFile(join(r.src, 'many', `f${i}.conf`), `value ${i}\n`);
    await writeFile(join(r.src, 'many', 'edit.swp'), 'editor scratch');
    await waitFor('1000 files', async () => (await readdir(join(r.dst, 'many')).catch(() => [])).length >= 1000, 60_000);
    expect(await r.sender.drain(20_000)).toBe(true);
    const got = (await readdir(join(r.dst, 'many'))).sort();
    expect(got).toHaveLength(1000);
    for (const i of [0, 1, 499, 998, 999]) expect(await content(join(r.dst, 'many', `f${i}.conf`))).toBe(`value ${i}\n`);
    expect(got).not.toContain('edit.swp');
    expect(r.sender.status().filesBehind).toBe(0);
  });

  it('watches directories, not files: a 1,200-file tree holds a few watches, and edits, chmods and deletes of its files still arrive', async () => {
    const watches = () => process.getActiveResourcesInfo().filter((x) => x === 'FSEventWrap').length;
    const r = await rig({
      seed: async (src) => {
        for (const d of ['a', 'b', 'c']) {
          await mkdir(join(src, d));
          for (let i = 0; i < 400; i++) await writeFile(join(src, d, `f${i}.conf`), `${d} ${i}\n`);
        }
      },
    });
    const before = watches();
    await r.sender.start();
    await waitFor('initial pass', async () => (await readdir(join(r.dst, 'c')).catch(() => [])).length === 400, 30_000);
    // One watch per directory (the root and a, b, c), not one per file as chokidar does for files it tracks.
    expect(watches() - before).toBeLessThanOrEqual(8);
    await writeFile(join(r.src, 'a', 'f7.conf'), 'edited\n');
    await chmod(join(r.src, 'b', 'f8.conf'), 0o600);
    await unlink(join(r.src, 'c', 'f9.conf'));
    await rm(join(r.src, 'b', 'gone-dir'), { recursive: true, force: true });
    await mkdir(join(r.src, 'b', 'gone-dir'));
    await writeFile(join(r.src, 'b', 'gone-dir', 'x.conf'), 'x\n');
    await waitFor('edits', async () => (await content(join(r.dst, 'a', 'f7.conf'))) === 'edited\n' && !(await exists(join(r.dst, 'c', 'f9.conf'))) && (await content(join(r.dst, 'b', 'gone-dir', 'x.conf'))) === 'x\n');
    await waitFor('chmod', async () => ((await stat(join(r.dst, 'b', 'f8.conf'))).mode & 0o777) === 0o600);
    await rm(join(r.src, 'b', 'gone-dir'), { recursive: true });
    await waitFor('directory delete', async () => !(await exists(join(r.dst, 'b', 'gone-dir'))));
    // Deletes on this node are reported (merge-back's tombstones), edits are not.
    expect(r.gone).toContain('etc/c/f9.conf');
    expect(r.gone).toContain('etc/b/gone-dir');
    expect(r.gone).not.toContain('etc/a/f7.conf');
    await waitFor('nothing behind', async () => r.sender.status().filesBehind === 0, 5000);
  });

  const linked = (fullPassIntervalMs: number) =>
    rig({
      fullPassIntervalMs,
      seed: async (src) => {
        await mkdir(join(src, 'a'));
        await mkdir(join(src, 'b'));
        await writeFile(join(src, 'a', 'x.conf'), 'orig\n');
      },
    });

  it('hard links in the tree: a write through one name reaches every name (no periodic pass needed)', async () => {
    const r = await linked(0);
    await r.sender.start();
    await waitFor('initial pass', async () => (await content(join(r.dst, 'a', 'x.conf'))) === 'orig\n');
    await link(join(r.src, 'a', 'x.conf'), join(r.src, 'b', 'y.conf'));
    await waitFor('the second name', async () => (await content(join(r.dst, 'b', 'y.conf'))) === 'orig\n');
    // Only b/ reports the write; a/x.conf is the same file.
    await writeFile(join(r.src, 'b', 'y.conf'), 'changed via b/y\n');
    await waitFor('both names changed', async () => (await content(join(r.dst, 'a', 'x.conf'))) === 'changed via b/y\n' && (await content(join(r.dst, 'b', 'y.conf'))) === 'changed via b/y\n', 5000);
    await waitFor('in sync', async () => r.sender.status().inSync, 5000);
  });

  it('a write or chmod through a hard link outside the tree arrives with the periodic verifying pass', async () => {
    const r = await linked(700);
    await r.sender.start();
    await waitFor('initial pass', async () => (await content(join(r.dst, 'a', 'x.conf'))) === 'orig\n');
    // A name outside the tree: no watched directory hears of it; the periodic pass does.
    const outside = join(r.base, 'outside.conf');
    await link(join(r.src, 'a', 'x.conf'), outside);
    await writeFile(outside, 'changed outside\n');
    await waitFor('the write from outside', async () => (await content(join(r.dst, 'a', 'x.conf'))) === 'changed outside\n', 5000);
    await chmod(outside, 0o600);
    await waitFor('the chmod from outside', async () => ((await stat(join(r.dst, 'a', 'x.conf'))).mode & 0o777) === 0o600, 5000);
    // In sync once the batch that carried it returned (the standby applies it before it answers).
    await waitFor('in sync', async () => r.sender.status().inSync, 5000);
  });

  it('stop() during start(), before the watcher is ready, lets start() return (a watcher closed early never emits ready)', async () => {
    const r = await rig({
      seed: async (src) => {
        for (let d = 0; d < 400; d++) {
          mkdirSync(join(src, `d${d}`, 'x'), { recursive: true });
          writeFileSync(join(src, `d${d}`, 'x', 'f.conf'), `${d}\n`);
        }
      },
    });
    const started = r.sender.start();
    await new Promise((res) => setTimeout(res, 5));
    await r.sender.stop();
    const outcome = await Promise.race([started.then(() => 'returned'), new Promise((res) => setTimeout(() => res('hung'), 10_000))]);
    expect(outcome).toBe('returned');
    // And it starts again normally afterwards.
    await r.sender.start();
    await waitFor('initial pass after the restart', async () => (await content(join(r.dst, 'd399', 'x', 'f.conf'))) === '399\n', 30_000);
  });

  it('delivers files written synchronously into a brand-new directory (before its watch exists)', async () => {
    const r = await rig();
    await r.sender.start();
    for (let round = 0; round < 3; round++) {
      const dir = join(r.src, `new-${round}`, 'deep');
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 100; i++) writeFileSync(join(dir, `f${i}`), `${round}:${i}`);
      const names = async () => (await readdir(join(r.dst, `new-${round}`, 'deep')).catch(() => [] as string[])).filter((n) => !n.startsWith('.nha-tmp-'));
      await waitFor(`round ${round}`, async () => (await names()).length === 100);
      for (const i of [0, 50, 99]) expect(await content(join(r.dst, `new-${round}`, 'deep', `f${i}`))).toBe(`${round}:${i}`);
    }
  });

  it('catches up after the standby was offline, keeping the standby copy until then', async () => {
    const r = await rig();
    await writeFile(join(r.src, 'stays.conf'), 'v1\n');
    await writeFile(join(r.src, 'goes.conf'), 'bye\n');
    await r.sender.start();
    await waitFor('initial pass', async () => (await content(join(r.dst, 'goes.conf'))) === 'bye\n');
    const port = (r.server.address() as AddressInfo).port;
    r.server.closeAllConnections();
    await new Promise((res) => r.server.close(res));

    await writeFile(join(r.src, 'stays.conf'), 'v2\n');
    await unlink(join(r.src, 'goes.conf'));
    await writeFile(join(r.src, 'new.conf'), 'new\n');
    await waitFor('sender notices', async () => r.sender.status().lastError !== null);
    expect(r.sender.status().filesBehind).toBeGreaterThan(0);
    expect(r.events.some((e) => e.type === 'files_sync_failed')).toBe(true);
    // What the standby had is untouched while it is away.
    expect(await content(join(r.dst, 'stays.conf'))).toBe('v1\n');
    expect(await content(join(r.dst, 'goes.conf'))).toBe('bye\n');

    await r.listen(port);
    await waitFor('catch-up', async () => (await content(join(r.dst, 'stays.conf'))) === 'v2\n' && (await content(join(r.dst, 'new.conf'))) === 'new\n' && !(await exists(join(r.dst, 'goes.conf'))));
    expect(await r.sender.drain(10_000)).toBe(true);
    expect(r.sender.status()).toMatchObject({ lastError: null, filesBehind: 0 });
    expect(r.events.some((e) => e.type === 'files_sync_recovered')).toBe(true);
    // The deleted file had been received from the primary, so it is not quarantined, but its last
    // copy is kept among the previous copies.
    expect(await quarantined(r.qdir)).toEqual([]);
    const prev = await readdir(join(r.qdir, 'previous'));
    expect(prev).toHaveLength(1);
    expect(await content(join(r.qdir, 'previous', prev[0], 'etc', 'goes.conf'))).toBe('bye\n');
    expect(r.receiver.status().keptPrevious).toBeGreaterThanOrEqual(1);
  });

  it('streams a large file with its checksum and keeps mode and mtime', async () => {
    const r = await rig({ largeFileBytes: 64 * 1024 });
    await r.sender.start();
    const big = Buffer.alloc(600 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    await writeFile(join(r.src, 'image.bin'), big, { mode: 0o640 });
    await waitFor('large file', async () => (await readFile(join(r.dst, 'image.bin')).catch(() => Buffer.alloc(0))).equals(big));
    const [a, b] = await Promise.all([stat(join(r.src, 'image.bin')), stat(join(r.dst, 'image.bin'))]);
    expect(b.mode & 0o777).toBe(0o640);
    expect(Math.abs(a.mtimeMs - b.mtimeMs)).toBeLessThan(1);
    expect(r.requests.filter((q) => q === 'PUT /peer/files/file').length).toBeGreaterThanOrEqual(1);
    // The write may have been seen twice (truncate, then data): a second transfer can still be landing.
    expect(await r.sender.drain(10_000)).toBe(true);
    expect((await readdir(r.dst)).filter((n) => n.startsWith('.nha-tmp-'))).toEqual([]);
  });

  it('quarantines a file changed on the standby instead of losing it', async () => {
    const r = await rig({
      seed: async (src, dst) => {
        await writeFile(join(src, 'shared.conf'), 'from primary v1\n');
        // Written on this node while it was primary, never received: must survive the first pass.
        await writeFile(join(dst, 'local-only.conf'), 'standby data\n');
      },
    });
    await r.sender.start();
    await waitFor('first pass', async () => (await content(join(r.dst, 'shared.conf'))) === 'from primary v1\n' && !(await exists(join(r.dst, 'local-only.conf'))));
    await writeFile(join(r.dst, 'shared.conf'), 'edited on standby\n');
    await writeFile(join(r.src, 'shared.conf'), 'from primary v2\n');
    await waitFor('overwrite', async () => (await content(join(r.dst, 'shared.conf'))) === 'from primary v2\n');

    const ids = await quarantined(r.qdir);
    expect(ids.length).toBe(2);
    const found: Record<string, string | null> = {};
    for (const id of ids) for (const n of await readdir(join(r.qdir, id, 'etc'))) found[n] = await content(join(r.qdir, id, 'etc', n));
    expect(found).toEqual({ 'local-only.conf': 'standby data\n', 'shared.conf': 'edited on standby\n' });
    expect(r.receiver.status().quarantined).toBe(2);
    expect(r.events.filter((e) => e.type === 'files_quarantined')).toHaveLength(2);

    // A file the standby holds exactly as received is replaced without a quarantine copy.
    await writeFile(join(r.src, 'shared.conf'), 'from primary v3\n');
    await waitFor('plain overwrite', async () => (await content(join(r.dst, 'shared.conf'))) === 'from primary v3\n');
    expect(r.receiver.status().quarantined).toBe(2);
  });
});
