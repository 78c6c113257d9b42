/**
 * RepoChangeWatch on a real directory tree: every event moves the generation (also two writes of one
 * file in quick succession), new directory trees are watched, vanished ones forgotten, and failures
 * mark the hint not ok (with a bump) until the watcher recovers.
 */
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoChangeWatch } from '../../src/replication/repo/change-watch.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tree(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nha-watch-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function watching(dir: string, opts: ConstructorParameters<typeof RepoChangeWatch>[1] = {}): Promise<RepoChangeWatch> {
  const w = new RepoChangeWatch(dir, opts);
  cleanups.push(() => w.stop());
  await w.start();
  return w;
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

describe('RepoChangeWatch', () => {
  it('is ok once started and bumps on create, on each of two quick writes, and on delete', async () => {
    const dir = await tree();
    await mkdir(join(dir, 'Repo'));
    const w = await watching(dir);
    expect(w.hint()).toMatchObject({ ok: true, error: null });
    expect(w.stats().dirsWatched).toBe(2);
    const g0 = w.hint().generation;
    await writeFile(join(dir, 'Repo', 'a._S3rver_object'), 'x');
    await until(() => w.hint().generation > g0, 'create');
    // Two writes within a few ms (chokidar would drop the second 'change' within 50 ms).
    await until(() => w.stats().events >= 1, 'events');
    await delay(50);
    const g1 = w.hint().generation;
    await appendFile(join(dir, 'Repo', 'a._S3rver_object'), 'y');
    await until(() => w.hint().generation > g1, 'first write');
    const g2 = w.hint().generation;
    await appendFile(join(dir, 'Repo', 'a._S3rver_object'), 'z');
    await until(() => w.hint().generation > g2, 'second write right after the first');
    const g3 = w.hint().generation;
    await rm(join(dir, 'Repo', 'a._S3rver_object'));
    await until(() => w.hint().generation > g3, 'delete');
  });

  it('watches a new directory tree, also files created in it right away, and forgets it when removed', async () => {
    const dir = await tree();
    const w = await watching(dir);
    await mkdir(join(dir, 'Repo', 'img', 'deep'), { recursive: true });
    await writeFile(join(dir, 'Repo', 'img', 'deep', 'x._S3rver_object'), 'x');
    await until(() => w.stats().dirsWatched === 4, 'three new directories watched');
    await delay(50);
    const g = w.hint().generation;
    await appendFile(join(dir, 'Repo', 'img', 'deep', 'x._S3rver_object'), 'more');
    await until(() => w.hint().generation > g, 'a write in the new deepest directory');
    await rm(join(dir, 'Repo', 'img'), { recursive: true });
    await until(() => w.stats().dirsWatched === 2, 'removed tree forgotten');
    expect(w.hint().ok).toBe(true);
  });

  it('flags an error (too many directories), bumps, and recovers with a higher generation', async () => {
    const dir = await tree();
    await mkdir(join(dir, 'a'));
    const w = await watching(dir, { maxDirs: 2, retryMs: 50 });
    expect(w.hint().ok).toBe(true);
    const before = w.hint();
    await mkdir(join(dir, 'b'));
    await until(() => !w.hint().ok, 'error flagged');
    expect(w.hint().error).toMatch(/more than 2 directories/);
    expect(w.hint().generation).toBeGreaterThan(before.generation);
    await rm(join(dir, 'b'), { recursive: true });
    await until(() => w.hint().ok, 'recovered', 10_000);
    expect(w.hint().instance).toBe(before.instance);
    expect(w.stats().restarts).toBeGreaterThan(0);
  });

  it('flags the root vanishing, and a stop, never reporting ok afterwards without a new bump', async () => {
    const dir = await tree();
    const root = join(dir, 'root');
    await mkdir(root);
    const w = await watching(root, { retryMs: 60_000 });
    const g = w.hint().generation;
    await rm(root, { recursive: true });
    await until(() => !w.hint().ok, 'root vanished flagged');
    expect(w.hint().generation).toBeGreaterThan(g);
    await w.stop();
    expect(w.hint()).toMatchObject({ ok: false, error: 'watcher stopped' });
    await mkdir(root);
    const stopped = w.hint().generation;
    await w.start();
    expect(w.hint().ok).toBe(true);
    expect(w.hint().generation).toBeGreaterThan(stopped);
  });
});
