/**
 * RepoReplicator on two s3rver instances: near-real-time copy of a new image, status figures, events on
 * failure and recovery, no overlapping passes, clean stop.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';
import { RepoReplicator } from '../../src/replication/repo/replicator.js';
import type { ObjectStore } from '../../src/ports.js';
import { fillSmall, md5, putBytes, readBytes, RepoLab, wrapStore } from './repo-helpers.js';

const lab = new RepoLab();
const replicators: RepoReplicator[] = [];
afterEach(async () => {
  for (const r of replicators.splice(0)) await r.stop();
  await lab.close();
});

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await delay(50);
  }
  throw new Error('condition not met in time');
}

/** Counts concurrent list() calls on a store, to prove passes never overlap. */
function countingLists(store: ObjectStore): { store: ObjectStore; maxConcurrent: () => number } {
  let now = 0;
  let max = 0;
  return {
    maxConcurrent: () => max,
    store: wrapStore(store, {
      list: async function* (prefix) {
        now++;
        max = Math.max(max, now);
        try {
          yield* store.list(prefix);
        } finally {
          now--;
        }
      },
    }),
  };
}

describe('RepoReplicator', () => {
  it('copies a new image within about one interval and reports status and events', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 5);
    const bus = new EventBus('standby', () => 3);
    const counted = countingLists(a.store);
    const rep = new RepoReplicator({ source: counted.store, target: b.store, bus, intervalMs: 200, deepVerifyCron: '' });
    replicators.push(rep);
    rep.start();
    await until(() => rep.status().passes >= 1 && rep.status().objectsBehind === 0 && rep.status().last?.copied === 5);
    expect(bus.recent({ types: ['repo_caught_up'] })).toHaveLength(1);

    const image = randomBytes(50_000);
    const t0 = Date.now();
    await putBytes(a.store, 'img/new-upload.qcow2', image);
    await until(async () => (await b.store.head('img/new-upload.qcow2')) !== null);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(md5(await readBytes(b.store, 'img/new-upload.qcow2'))).toBe(md5(image));

    // syncOnce alongside the loop never runs two passes at once.
    await Promise.all([rep.syncOnce(), rep.syncOnce({ deep: true })]);
    expect(counted.maxConcurrent()).toBe(1);
    const st = rep.status();
    expect(st).toMatchObject({ running: true, objectsBehind: 0, bytesBehind: 0, lastError: null });
    expect(st.lastDeepPassAt).not.toBeNull();
    expect(st.lastPassMs).toBeGreaterThanOrEqual(0);
  });

  it('reports a failing source once, keeps the target, and recovers', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 3);
    const bus = new EventBus('standby', () => 3);
    const bad = a.storeWith({ signatureVersion: 'v2', secretAccessKey: 'wrong' });
    let source: ObjectStore = bad;
    const switching: ObjectStore = {
      describe: () => source.describe(),
      list: (p) => source.list(p),
      head: (k) => source.head(k),
      get: (k) => source.get(k),
      put: (k, body, s, m, o) => source.put(k, body, s, m, o),
      delete: (k) => source.delete(k),
    };
    const rep = new RepoReplicator({ source: switching, target: b.store, bus, intervalMs: 100, deepVerifyCron: '' });
    replicators.push(rep);
    rep.start();
    await until(() => rep.status().failedPasses >= 3);
    expect(rep.status().lastErrorCode).toBe('REPO_AUTH_FAILED');
    expect(bus.recent({ types: ['repo_pass_failed'] })).toHaveLength(1);
    // Failing passes back off (interval, then doubling) instead of retrying every interval.
    await until(() => rep.status().backoffMs >= 400);
    source = a.store;
    await until(() => rep.status().lastError === null && rep.status().last?.copied === 3);
    expect(rep.status().backoffMs).toBe(0);
    expect(bus.recent({ types: ['repo_caught_up'] })).toHaveLength(1);
    await rep.stop();
    expect(rep.status().running).toBe(false);
  });

  it('surfaces the delete guard in status without deleting', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(b.store, 4);
    const bus = new EventBus('standby', () => 3);
    const rep = new RepoReplicator({ source: a.store, target: b.store, bus, intervalMs: 100, deepVerifyCron: '' });
    replicators.push(rep);
    await expect(rep.syncOnce()).rejects.toMatchObject({ code: 'REPO_DELETE_GUARD' });
    expect(rep.status()).toMatchObject({ lastErrorCode: 'REPO_DELETE_GUARD', objectsBehind: 4 });
    expect(bus.recent({ types: ['repo_delete_guard'] })).toHaveLength(1);
    let n = 0;
    for await (const _ of b.store.list()) n += _ ? 1 : 0;
    expect(n).toBe(4);
  });
});
