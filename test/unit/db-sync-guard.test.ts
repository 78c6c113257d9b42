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

  describe('dating a stall or a loss with the oldest waiting commit', () => {
    class FlushDb extends FakeDb {
      flush = 100;
      override async replicas(): Promise<ReplicaInfo[]> {
        return this.streaming ? [{ name: 'beta', state: 'streaming', syncState: 'sync', sentBytes: this.flush, flushBytes: this.flush, replayBytes: this.flush, replayLagMs: 0 }] : [];
      }
    }
    // Reads on a 1 s grid with degradeAfterMs 10 s. `wait` is the oldest waiting commit's age at the read.
    // The stall begins at 10.3 s (the standby freezes: its flush stays at 100 while the primary moves on).
    const rows: { name: string; gone: boolean; wait: (t: number) => number | null; degradeDueAt: number }[] = [
      { name: 'hung, waits known: due when the oldest commit has waited degradeAfterMs', gone: false, wait: (t) => t - 10_300, degradeDueAt: 20_300 },
      { name: 'hung, no wait known: due degradeAfterMs after the read that first saw it (as before)', gone: false, wait: () => null, degradeDueAt: 21_000 },
      { name: 'gone, waits known', gone: true, wait: (t) => t - 10_300, degradeDueAt: 20_300 },
      { name: 'gone, no wait known', gone: true, wait: () => null, degradeDueAt: 21_000 },
      // A waiting commit older than the previous read cannot date the stall earlier than that read,
      // which saw the standby keep up.
      { name: 'hung, a commit waiting from before the previous read', gone: false, wait: (t) => t - 5_000, degradeDueAt: 20_000 },
    ];
    for (const row of rows) {
      it(row.name, async () => {
        const db = new FlushDb();
        const c = clock();
        const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'degrade', degradeAfterMs: 10_000, clock: c });
        c.t = 10_000;
        expect(await g.tick(100, 0)).toBe('sync');
        expect(g.dueInMs()).toBeNull();
        // frozen at 10.3 s: every read from 11 s on sees the primary ahead and the flush not moving
        if (row.gone) db.streaming = false;
        c.t = 11_000;
        await g.tick(200, row.wait(11_000));
        expect(g.dueInMs()).toBe(row.degradeDueAt - 11_000);
        // the caller reads again when it falls due: degraded exactly then, not a grid period later
        c.t = row.degradeDueAt - 1;
        expect(await g.tick(300, row.wait(c.t))).not.toBe('degraded');
        c.t = row.degradeDueAt;
        expect(await g.tick(300, row.wait(c.t))).toBe('degraded');
        expect(g.dueInMs()).toBeNull();
      });
    }

    it('a standby catching up (flush moving every read) is not hung however long a commit waited', async () => {
      const db = new FlushDb();
      const c = clock();
      const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'degrade', degradeAfterMs: 10_000, clock: c });
      for (let t = 0; t <= 30_000; t += 1000) {
        c.t = t;
        db.flush = 100 + t; // moves every read, always behind the primary
        expect(await g.tick(1_000_000, t)).toBe('sync');
      }
    });

    it('block: nothing falls due', async () => {
      const db = new FlushDb();
      const c = clock();
      const g = new SyncGuard(db, { mode: 'sync', standbyName: 'beta', onStandbyLoss: 'block', degradeAfterMs: 10_000, clock: c });
      await g.tick(100, 0);
      db.streaming = false;
      c.t = 1000;
      expect(await g.tick(200, 500)).toBe('waiting');
      expect(g.dueInMs()).toBeNull();
    });
  });
});
