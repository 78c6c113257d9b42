/**
 * RepoReplicator with a change hint from a RepoChangeWatch on the source s3rver's data directory:
 * no listing while nothing changed, a write wakes a pass that copies it, a change during a pass is not
 * lost, and every reason to distrust the hint falls back to listing.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';
import { RepoReplicator } from '../../src/replication/repo/replicator.js';
import { RepoChangeWatch } from '../../src/replication/repo/change-watch.js';
import type { RepoChangeHint } from '../../src/replication/repo/hint.js';
import type { Clock, ObjectStore } from '../../src/ports.js';
import { systemClock } from '../../src/clock.js';
import { fillSmall, md5, putBytes, readBytes, RepoLab, wrapStore } from './repo-helpers.js';

const lab = new RepoLab();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await lab.close();
});

async function until(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Counts list() calls (one per side and listing pass); `afterList` runs once a listing was fully read. */
function counting(store: ObjectStore, afterList?: () => Promise<void>): { store: ObjectStore; lists: () => number } {
  let n = 0;
  return {
    lists: () => n,
    store: wrapStore(store, {
      list: async function* (prefix) {
        n++;
        yield* store.list(prefix);
        await afterList?.();
      },
    }),
  };
}

async function setup(opts: { maxDirs?: number; afterList?: () => Promise<void>; clock?: Clock; fullPassMaxAgeMs?: number; intervalMs?: number } = {}) {
  const a = await lab.repo();
  const b = await lab.repo();
  await fillSmall(a.store, 4);
  const watch = new RepoChangeWatch(a.dir, { maxDirs: opts.maxDirs, retryMs: 60_000 });
  await watch.start();
  cleanups.push(() => watch.stop());
  const src = counting(a.store, opts.afterList);
  const tgt = counting(b.store);
  const bus = new EventBus('standby', () => 3);
  const rep = new RepoReplicator({
    source: src.store, target: tgt.store, bus, deepVerifyCron: '', clock: opts.clock,
    intervalMs: opts.intervalMs ?? 60_000, fullPassMaxAgeMs: opts.fullPassMaxAgeMs,
    changeHint: () => watch.hint(),
  });
  cleanups.push(() => rep.stop());
  const off = watch.onChange(() => rep.hintChanged());
  cleanups.push(async () => void off());
  return { a, b, watch, src, tgt, rep, bus };
}

/**
 * A replicator on a controlled clock (`x.t`) whose source hint is set by hand (`x.hint`), starting at
 * instance w1, generation 10; the source holds 3 objects.
 */
async function scriptedHint(o: { graceMs?: number } = {}) {
  const a = await lab.repo();
  const b = await lab.repo();
  await fillSmall(a.store, 3);
  const x: { t: number; hint: RepoChangeHint | null } = { t: 0, hint: { instance: 'w1', generation: 10, ok: true, error: null } };
  const clock: Clock = { ...systemClock, monotonicMs: () => x.t };
  const src = counting(a.store);
  const bus = new EventBus('standby', () => 3);
  const rep = new RepoReplicator({
    source: src.store, target: b.store, bus, clock, deepVerifyCron: '', fullPassMaxAgeMs: 30_000, changeHint: () => x.hint,
    ...(o.graceMs !== undefined ? { changeHintGraceMs: () => o.graceMs! } : {}),
  });
  cleanups.push(() => rep.stop());
  const pass = async () => (await rep.syncOnce({ allowSkip: true })).skippedByHint;
  return { a, b, src, bus, rep, pass, x };
}

describe('RepoReplicator with a change hint', () => {
  it('(a) lists nothing while the hint is unchanged after a clean full pass', async () => {
    const { src, tgt, rep } = await setup();
    const first = await rep.syncOnce({ allowSkip: true });
    expect(first).toMatchObject({ skippedByHint: false, copied: 4 });
    // The copy wrote only to the target; the source directory is quiet now.
    const second = await rep.syncOnce({ allowSkip: true });
    expect(second.skippedByHint).toBe(true);
    const lists = [src.lists(), tgt.lists()];
    expect(lists).toEqual([1, 1]);
    for (let i = 0; i < 5; i++) expect((await rep.syncOnce({ allowSkip: true })).skippedByHint).toBe(true);
    expect([src.lists(), tgt.lists()]).toEqual(lists);
    expect(rep.status()).toMatchObject({ passesSkipped: 6, passes: 1, hint: { lastDecision: 'source unchanged since the last clean full pass' } });
    // A forced pass (switchover's sync-now) always lists.
    expect((await rep.syncOnce()).skippedByHint).toBe(false);
    expect(src.lists()).toBe(2);
  });

  it('(b) a write on the source bumps the generation and wakes a pass that copies it (interval 60 s)', async () => {
    const { a, b, watch, rep } = await setup();
    rep.start();
    await until(() => rep.status().passes === 1 && rep.status().hint.basis !== null, 'first clean pass');
    await until(() => rep.decide().skip, 'hint settled');
    const g0 = watch.hint().generation;
    const image = randomBytes(40_000);
    const t0 = Date.now();
    await putBytes(a.store, 'img/new.qcow2', image);
    await until(() => watch.hint().generation > g0, 'generation bumped');
    // Only the hint can start a pass this soon: the interval is a minute.
    await until(async () => (await b.store.head('img/new.qcow2')) !== null, 'copy on the target', 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(md5(await readBytes(b.store, 'img/new.qcow2'))).toBe(md5(image));
  });

  it('(c) a change during a pass is not lost: the basis is the generation seen before listing', async () => {
    let inject: (() => Promise<void>) | null = null;
    const { a, b, watch, rep } = await setup({ afterList: async () => inject?.() });
    await rep.syncOnce({ allowSkip: true });
    expect(rep.decide().skip).toBe(true);
    // A first write moves the hint, so the next pass lists (as the loop would).
    const g0 = watch.hint().generation;
    await putBytes(a.store, 'img/first.qcow2', randomBytes(10_000));
    await until(() => watch.hint().generation > g0 && !rep.decide().skip, 'hint moved');
    const late = randomBytes(30_000);
    inject = async () => {
      inject = null;
      // The source listing is complete and does not hold this object. Wait until the watcher saw the
      // write, so a basis taken after listing would already include its bump.
      const g = watch.hint().generation;
      await putBytes(a.store, 'img/late.qcow2', late);
      await until(() => watch.hint().generation > g, 'watcher saw the late write');
    };
    const during = await rep.syncOnce({ allowSkip: true });
    expect(during).toMatchObject({ skippedByHint: false, copied: 1 });
    expect(inject).toBeNull();
    expect(await b.store.head('img/late.qcow2')).toBeNull();
    expect(rep.status().objectsBehind).toBe(0);
    const next = await rep.syncOnce({ allowSkip: true });
    expect(rep.status().hint.lastDecision).toMatch(/source changed/);
    expect(next).toMatchObject({ skippedByHint: false, copied: 1 });
    expect(md5(await readBytes(b.store, 'img/late.qcow2'))).toBe(md5(late));
  });

  it('(d) a watcher error on the source lists again', async () => {
    // Watch at most the directories there are now (root, bucket, img/): a new prefix overflows it.
    const { a, watch, src, rep } = await setup({ maxDirs: 3 });
    expect(watch.stats().dirsWatched).toBe(3);
    await rep.syncOnce({ allowSkip: true });
    expect((await rep.syncOnce({ allowSkip: true })).skippedByHint).toBe(true);
    await putBytes(a.store, 'other/x.qcow2', randomBytes(1000));
    await until(() => !watch.hint().ok, 'watcher error flagged');
    const before = src.lists();
    for (let i = 0; i < 3; i++) expect((await rep.syncOnce({ allowSkip: true })).skippedByHint).toBe(false);
    expect(src.lists()).toBe(before + 3);
    expect(rep.status().hint.lastDecision).toMatch(/not usable: more than 3 directories/);
  });

  it('(d) no hint, another watcher instance, and the max age all list again; a missed change distrusts the hint', async () => {
    const { a, src, bus, rep, pass, x } = await scriptedHint();
    expect(await pass()).toBe(false);
    expect(await pass()).toBe(true);
    x.hint = null;
    expect(await pass()).toBe(false);
    expect(rep.status().hint.lastDecision).toMatch(/no change hint/);
    // That pass had no hint to record: the next one lists too, then skipping resumes.
    x.hint = { instance: 'w1', generation: 10, ok: true, error: null };
    expect(await pass()).toBe(false);
    expect(await pass()).toBe(true);
    x.hint = { instance: 'w2', generation: 10, ok: true, error: null };
    expect(await pass()).toBe(false);
    expect(rep.status().hint.lastDecision).toMatch(/restarted/);
    expect(await pass()).toBe(true);
    x.t = 29_999;
    expect(await pass()).toBe(true);
    x.t = 30_000;
    expect(await pass()).toBe(false);
    expect(rep.status().hint.lastDecision).toMatch(/30000 ms old/);
    expect(src.lists()).toBe(5);
    // A change the hint did not report (here: written while the generation stayed put) is found by
    // the max-age pass. The hint may still be late (it travels in heartbeats): the verdict waits out
    // the grace (3000 ms by default). It has not moved by then, so that watcher instance is distrusted.
    await putBytes(a.store, 'img/unreported.qcow2', randomBytes(2000));
    x.t = 60_001;
    const r = await rep.syncOnce({ allowSkip: true });
    expect(r).toMatchObject({ skippedByHint: false, copied: 1 });
    expect(rep.status().hint).toMatchObject({ misses: 0, distrusted: null });
    x.t = 62_000;
    expect(await pass()).toBe(true);
    expect(rep.status().hint).toMatchObject({ misses: 0, distrusted: null });
    x.t = 63_001;
    expect(await pass()).toBe(false);
    expect(rep.status().hint).toMatchObject({ misses: 1, distrusted: 'w2' });
    expect(bus.recent({ types: ['repo_hint_missed'] })).toHaveLength(1);
    expect(await pass()).toBe(false);
    expect(rep.status().hint.lastDecision).toMatch(/missed a change/);
    x.hint = { instance: 'w3', generation: 1, ok: true, error: null };
    expect(await pass()).toBe(false);
    expect(await pass()).toBe(true);
  });

  it('(d) a write the pass lists before its hint arrives is late, not missed: the hint is kept', async () => {
    const { a, src, bus, rep, pass, x } = await scriptedHint({ graceMs: 1500 });
    expect(await pass()).toBe(false);
    expect(await pass()).toBe(true);
    // The upload lands just before the max-age pass lists; its hint bump is still on its way.
    await putBytes(a.store, 'img/late.qcow2', randomBytes(2000));
    x.t = 30_000;
    expect(await rep.syncOnce({ allowSkip: true })).toMatchObject({ skippedByHint: false, copied: 1 });
    x.t = 30_400;
    x.hint = { instance: 'w1', generation: 11, ok: true, error: null };
    expect(await pass()).toBe(false); // the hint moved: one listing, as for any change
    x.t = 40_000;
    expect(await pass()).toBe(true);
    expect(rep.status().hint).toMatchObject({ misses: 0, distrusted: null });
    expect(bus.recent({ types: ['repo_hint_missed'] })).toHaveLength(0);
    // The hint going quiet for a while (no heartbeat) does not turn the late write into a miss either.
    await putBytes(a.store, 'img/late-2.qcow2', randomBytes(2000));
    x.t = 71_000;
    expect(await rep.syncOnce({ allowSkip: true })).toMatchObject({ skippedByHint: false, copied: 1 });
    x.hint = null;
    x.t = 80_000;
    expect(await pass()).toBe(false);
    x.hint = { instance: 'w1', generation: 12, ok: true, error: null };
    expect(await pass()).toBe(false);
    expect(await pass()).toBe(true);
    expect(rep.status().hint).toMatchObject({ misses: 0, distrusted: null });
  });

  it('(e) an idle loop sleeps until the hint would go stale, not every interval, and lists once it has', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 3);
    const hint: RepoChangeHint = { instance: 'w1', generation: 4, ok: true, error: null };
    // The hint as the heartbeat-fed data path keeps it: each heartbeat makes it fresh for 300 ms more.
    const freshMs = 300;
    let freshUntil = performance.now() + freshMs;
    const src = counting(a.store);
    const rep = new RepoReplicator({
      source: src.store, target: b.store, deepVerifyCron: '', intervalMs: 50, fullPassMaxAgeMs: 30_000,
      changeHint: () => (performance.now() <= freshUntil ? hint : null),
      changeHintFreshUntil: () => freshUntil,
    });
    cleanups.push(() => rep.stop());
    const heartbeats = setInterval(() => {
      freshUntil = performance.now() + freshMs;
      rep.hintChanged(); // as every heartbeat does; the same hint wakes nothing
    }, 100);
    cleanups.push(async () => clearInterval(heartbeats));
    rep.start();
    await until(() => rep.status().passes === 1 && rep.status().passesSkipped >= 1, 'a listing pass, then a skipped one');
    const skipped0 = rep.status().passesSkipped;
    const lists0 = src.lists();
    await delay(1200);
    // A loop waking every 50 ms would have decided about 24 times; this one wakes when the hint could
    // have gone stale (every 200-300 ms while heartbeats keep it fresh).
    expect(rep.status().passesSkipped - skipped0).toBeLessThanOrEqual(8);
    expect(rep.status().passesSkipped - skipped0).toBeGreaterThanOrEqual(2);
    expect(src.lists()).toBe(lists0);
    // The source goes quiet: once its hint is stale the loop lists, without waiting for a hint change.
    clearInterval(heartbeats);
    const quietAt = performance.now();
    await until(() => src.lists() > lists0, 'a listing pass after the hint went stale', 5_000);
    expect(performance.now() - quietAt).toBeGreaterThanOrEqual(freshMs - 110);
    expect(performance.now() - quietAt).toBeLessThan(freshMs + 1000);
    expect(rep.status().hint.lastDecision).toMatch(/no change hint/);
  });
});
