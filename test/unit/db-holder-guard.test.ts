import { describe, expect, it } from 'vitest';
import type { EventInput } from '../../src/events/bus.js';
import type { Clock } from '../../src/ports.js';
import { SyncGuard } from '../../src/replication/db/sync-guard.js';
import { canFollow, parseTimelineHistory } from '../../src/replication/db/lsn.js';
import type { ReplicaInfo } from '../../src/replication/db/types.js';
import { manualClock } from '../helpers/manual-clock.js';

class Db {
  streaming = true;
  flush = 100;
  writes: (string | null)[] = [];
  async replicas(): Promise<ReplicaInfo[]> {
    return this.streaming ? [{ name: 'b', state: 'streaming', syncState: 'sync', sentBytes: this.flush, flushBytes: this.flush, replayBytes: this.flush, replayLagMs: 0 }] : [];
  }
  async setSynchronousStandby(name: string | null): Promise<void> {
    this.writes.push(name);
  }
}

function setup(claimOk: () => boolean = () => true, jitterMs?: number) {
  const db = new Db();
  const c: Clock & { t: number } = Object.assign(manualClock(() => c.t), { t: 0 });
  const events: EventInput[] = [];
  const claims: boolean[] = [];
  let primary = 100;
  const g = new SyncGuard(db, {
    mode: 'sync',
    standbyName: 'b',
    onStandbyLoss: 'degrade',
    degradeAfterMs: 1000,
    ...(jitterMs !== undefined ? { jitterMs } : {}),
    clock: c,
    emit: (e) => events.push(e),
    position: async () => primary,
    claim: async (peerHolds) => {
      claims.push(peerHolds);
      return claimOk();
    },
  });
  return { db, c, events, claims, g, setPrimary: (n: number) => (primary = n) };
}

describe('SyncGuard and the data-holder record', () => {
  it('names the standby only once it flushed everything written before sync was on', async () => {
    const s = setup();
    s.db.flush = 50;
    s.setPrimary(100);
    expect(await s.g.tick(100)).toBe('sync');
    expect(s.claims).toEqual([]);
    s.db.flush = 100;
    await s.g.tick(100);
    expect(s.claims).toEqual([true]);
    expect(s.g.standbyHolds).toBe(true);
  });

  it('reads on a grid that come a few ms early still degrade on time (jitterMs), not a whole tick later', async () => {
    const s = setup(() => true, 50);
    await s.g.tick(100);
    s.db.flush = 100;
    s.c.t = 100;
    expect(await s.g.tick(150)).toBe('sync');
    s.c.t = 1040; // 940 ms stalled: more than the jitter short
    expect(await s.g.tick(160)).toBe('sync');
    s.c.t = 1097; // 997 ms: the read that should have been at 1100 came 3 ms early
    expect(await s.g.tick(170)).toBe('degraded');
    expect(s.claims.at(-1)).toBe(false);
  });

  it('a hung standby (flush not moving while the primary is ahead) degrades after degradeAfterMs, record first', async () => {
    const s = setup();
    await s.g.tick(100);
    s.db.flush = 100;
    s.c.t = 100;
    expect(await s.g.tick(150)).toBe('sync'); // behind, but just now
    s.c.t = 1099;
    expect(await s.g.tick(160)).toBe('sync');
    s.c.t = 1100;
    expect(await s.g.tick(170)).toBe('degraded');
    expect(s.claims.at(-1)).toBe(false);
    expect(s.db.writes.at(-1)).toBe(null);
    expect(s.events.find((e) => e.type === 'db.sync.degraded')?.details).toMatchObject({ hung: true });
    // It resumes and catches up: synchronous again.
    s.db.flush = 170;
    s.c.t = 1200;
    expect(await s.g.tick(170)).toBe('sync');
  });

  it('keeps commits waiting when the record cannot be updated (coordinator unreachable)', async () => {
    const s = setup(() => false);
    await s.g.tick(100);
    s.db.streaming = false;
    s.c.t = 5000;
    expect(await s.g.tick(100)).toBe('waiting');
    s.c.t = 6000;
    expect(await s.g.tick(100)).toBe('waiting');
    expect(s.db.writes).not.toContain(null);
    expect(s.events.map((e) => e.type)).toContain('db.sync.degrade_blocked');
  });
});

describe('canFollow compares timeline histories, not numbers', () => {
  const h = (text: string) => parseTimelineHistory(text);
  it('the same timeline number reached through different forks has diverged', () => {
    const v = canFollow({ timeline: 2, endBytes: 0x6000000, history: h('1\t0/3000000\tno recovery target specified') }, { timeline: 2, history: h('1\t0/5000000\tno recovery target specified') });
    expect(v.ok).toBe(false);
  });
  it('identical histories follow', () => {
    const v = canFollow({ timeline: 2, endBytes: 0x4000000, history: h('1\t0/3000000\tx') }, { timeline: 2, history: h('1\t0/3000000\ty') });
    expect(v.ok).toBe(true);
  });
  it('a missing local history on a timeline above 1 cannot be checked', () => {
    expect(canFollow({ timeline: 2, endBytes: 1, history: null }, { timeline: 2, history: [] }).ok).toBe(false);
  });
  it('the primary reached the same number through a fork this node never saw', () => {
    const v = canFollow({ timeline: 3, endBytes: 0x4000000, history: h('1\t0/3000000\tx') }, { timeline: 3, history: h('1\t0/3000000\tx\n2\t0/3800000\ty') });
    expect(v.ok).toBe(false);
  });
});
