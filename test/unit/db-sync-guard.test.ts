import { describe, expect, it } from 'vitest';
import type { EventInput } from '../../src/events/bus.js';
import type { Clock } from '../../src/ports.js';
import { SyncGuard } from '../../src/replication/db/sync-guard.js';
import type { ReplicaInfo } from '../../src/replication/db/types.js';
import { manualClock } from '../helpers/manual-clock.js';

class FakeDb {
  streaming = true;
  writes: (string | null)[] = [];
  async replicas(): Promise<ReplicaInfo[]> {
    return this.streaming ? [{ name: 'beta', state: 'streaming', syncState: 'sync', sentBytes: 1, replayBytes: 1, replayLagMs: 0 }] : [];
  }
  async setSynchronousStandby(name: string | null): Promise<void> {
    this.writes.push(name);
  }
}

function clock(): Clock & { t: number } {
  const c: Clock & { t: number } = Object.assign(manualClock(() => c.t), { t: 0 });
  return c;
}

describe('SyncGuard', () => {
  it('async mode clears synchronous_standby_names once and stays async', async () => {
    const db = new FakeDb();
    const g = new SyncGuard(db, { mode: 'async', standbyName: 'beta', onStandbyLoss: 'degrade', degradeAfterMs: 1000, clock: clock() });
    expect(await g.tick()).toBe('async');
    expect(await g.tick()).toBe('async');
    expect(db.writes).toEqual([null]);
  });

  it('degrade: sync while streaming, waits during the grace period, degrades with an event, restores', async () => {
    const db = new FakeDb();
    const c = clock();
    const events: EventInput[] = [];
    const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'degrade', degradeAfterMs: 1000, clock: c, emit: (e) => events.push(e) });
    expect(await g.tick()).toBe('sync');
    db.streaming = false;
    c.t = 100;
    expect(await g.tick()).toBe('waiting');
    c.t = 1099;
    expect(await g.tick()).toBe('waiting');
    c.t = 1100;
    expect(await g.tick()).toBe('degraded');
    c.t = 5000;
    expect(await g.tick()).toBe('degraded');
    expect(events.map((e) => e.type)).toEqual(['db.sync.degraded']);
    db.streaming = true;
    expect(await g.tick()).toBe('sync');
    expect(events.map((e) => e.type)).toEqual(['db.sync.degraded', 'db.sync.restored']);
    expect(db.writes).toEqual(['beta', null, 'beta']);
  });

  it('block: never clears the synchronous standby however long it is gone', async () => {
    const db = new FakeDb();
    db.streaming = false;
    const c = clock();
    const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'block', degradeAfterMs: 10, clock: c });
    for (const t of [0, 100, 100_000]) {
      c.t = t;
      expect(await g.tick()).toBe('waiting');
    }
    expect(db.writes).toEqual(['beta']);
  });

  it('a brief loss shorter than degradeAfterMs resets the timer', async () => {
    const db = new FakeDb();
    const c = clock();
    const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'degrade', degradeAfterMs: 1000, clock: c });
    db.streaming = false;
    c.t = 0;
    await g.tick();
    db.streaming = true;
    c.t = 900;
    await g.tick();
    db.streaming = false;
    c.t = 1500;
    expect(await g.tick()).toBe('waiting');
  });
});
