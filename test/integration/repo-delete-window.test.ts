/**
 * The repository delete guard across passes, on two real s3rver instances: a trickle of deletes, each
 * pass within maxDeleteFraction, stops at the sliding window's limit instead of emptying the standby.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';
import { RepoReplicator } from '../../src/replication/repo/replicator.js';
import { fillSmall, listing, RepoLab } from './repo-helpers.js';

const lab = new RepoLab();
const replicators: RepoReplicator[] = [];
afterEach(async () => {
  for (const r of replicators.splice(0)) await r.stop();
  await lab.close();
});

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await delay(50);
  }
  throw new Error('condition not met in time');
}

describe('repository delete window', () => {
  it('deleting 8 images per pass stops at 10 % of the standby within the window', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    const images = [...(await fillSmall(a.store, 100)).keys()];
    const bus = new EventBus('standby', () => 3);
    const rep = new RepoReplicator({ source: a.store, target: b.store, bus, intervalMs: 200, deepVerifyCron: '', sync: { maxDeleteFraction: 0.1 }, deleteWindowMs: 600_000, maxDeletesPerWindow: 1000 });
    replicators.push(rep);
    rep.start();
    await until(async () => (await listing(b.store)).size === 100 && rep.status().objectsBehind === 0);

    // 8 every round: each pass alone deletes 8 of 100 or fewer, within maxDeleteFraction.
    for (let round = 0; round < 4; round++) {
      const passes = rep.status().passes;
      for (const key of images.slice(round * 8, round * 8 + 8)) await a.store.delete(key);
      await until(() => rep.status().passes >= passes + 2);
    }
    const left = (await listing(b.store)).size;
    expect(left).toBe(92);
    const guard = bus.recent({ types: ['repo_delete_guard'] });
    expect(guard.length).toBeGreaterThanOrEqual(1);
    expect(guard[0]).toMatchObject({ severity: 'critical' });
    expect(guard[0].message).toMatch(/window/);
    const st = rep.status();
    expect(st.lastErrorCode).toBe('REPO_DELETE_GUARD');
    expect(st.objectsBehind).toBe(24);
    // One situation, one event, not one per pass.
    const passesNow = st.passes;
    await until(() => rep.status().passes >= passesNow + 1, 40_000);
    expect(bus.recent({ types: ['repo_delete_guard'] })).toHaveLength(guard.length);
  });
});
