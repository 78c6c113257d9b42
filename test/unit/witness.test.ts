import { describe, expect, it } from 'vitest';
import { WitnessState } from '../../src/cluster/witness.js';
import type { Clock } from '../../src/ports.js';
import { manualClock } from '../helpers/manual-clock.js';

function fakeClock() {
  let t = 1000;
  const clock: Clock = manualClock(() => t);
  return { clock, advance: (ms: number) => (t += ms) };
}

describe('WitnessState', () => {
  it('grants a new epoch, renews the holder, refuses others while the lease runs', () => {
    const { clock, advance } = fakeClock();
    const w = new WitnessState(clock, null);
    expect(w.acquire('a', 1, 700)).toMatchObject({ granted: true, epoch: 1, holder: 'a' });
    advance(300);
    expect(w.acquire('b', 2, 700)).toMatchObject({ granted: false, epoch: 1, holder: 'a' });
    expect(w.acquire('a', 1, 700).granted).toBe(true); // renewal
    advance(699);
    expect(w.acquire('b', 2, 700).granted).toBe(false);
    advance(2);
    expect(w.acquire('b', 2, 700)).toMatchObject({ granted: true, epoch: 2, holder: 'b' });
    // The old holder can no longer renew its old epoch.
    expect(w.acquire('a', 1, 700)).toMatchObject({ granted: false, epoch: 2 });
  });

  it('refuses stale and equal epochs to a non-holder, and a released epoch cannot be renewed', () => {
    const { clock, advance } = fakeClock();
    const w = new WitnessState(clock, null);
    w.acquire('a', 5, 700);
    advance(1000);
    expect(w.acquire('b', 5, 700).granted).toBe(false);
    expect(w.acquire('b', 4, 700).granted).toBe(false);
    expect(w.release('b', 5).granted).toBe(false);
    expect(w.release('a', 5).granted).toBe(true);
    expect(w.acquire('b', 6, 700)).toMatchObject({ granted: true, holder: 'b' });
  });

  it('a release lets the successor take the next epoch at once (graceful handover)', () => {
    const { clock } = fakeClock();
    const w = new WitnessState(clock, null);
    w.acquire('a', 3, 700);
    w.release('a', 3);
    expect(w.acquire('b', 4, 700).granted).toBe(true);
  });

  it('a refusal in the last instant of a lease still names the holder and the time left (one clock reading per call)', () => {
    // A clock that moves on by 0.4 ms at every reading, as a real one does between two calls.
    let t = 1000;
    const clock: Clock = manualClock(() => (t += 0.4));
    const w = new WitnessState(clock, null);
    w.acquire('a', 1, 700); // lease ends at 1000.4 + 700
    t = 1000.4 + 700 - 0.7; // the next reading is 0.3 ms before the end
    const r = w.acquire('b', 2, 700);
    expect(r.granted).toBe(false);
    expect(r.holder).toBe('a');
    expect(r.remainingMs).toBeGreaterThan(0);
    expect(r.remainingMs).toBeLessThan(1);
  });

  it('caps any lease at maxLeaseMs', () => {
    const { clock, advance } = fakeClock();
    const w = new WitnessState(clock, null, 1000);
    w.acquire('a', 1, 60_000);
    advance(1001);
    expect(w.acquire('b', 2, 700).granted).toBe(true);
  });
});
