import { afterEach, describe, expect, it, vi } from 'vitest';
import { PROCESS_GRID_PHASE_MS, everyOnGrid, gridDelayMs } from '../../src/util/cadence.js';

describe('gridDelayMs', () => {
  it.each([
    // period, now, minGap, expected delay, why
    [1000, 12_345, undefined, 655, 'to the next multiple of the period'],
    [1000, 13_000, undefined, 1000, 'exactly on a grid point: the next one'],
    [1000, 12_999, undefined, 1001, 'a timer that fired 1 ms early does not fire again at once'],
    [1000, 12_760, undefined, 1240, 'closer than a quarter period: the grid point after'],
    [1000, 12_740, undefined, 260, 'just over a quarter period: this grid point'],
    [2000, 12_345, 1000, 1655, 'a custom minimum gap'],
    [2000, 13_100, 1000, 2900, 'a custom minimum gap skips a grid point'],
    [100, 12_345, undefined, 55, 'a fast heartbeat grid'],
    [1000, -250, undefined, 250, 'negative clock readings stay on the grid'],
    [1000, 12_345, 5000, 1655, 'a minimum gap above the period is capped at the period'],
  ])('period %i at %i (gap %s) waits %i: %s', (period, now, gap, want, _why) => {
    expect(gridDelayMs(period, now, gap, 0)).toBe(want);
  });

  it('shifts the grid by the phase; the process phase is the default', () => {
    expect(gridDelayMs(1000, 12_345, undefined, 300)).toBe(955);
    expect(gridDelayMs(1000, 12_345, undefined, 1300)).toBe(955);
    expect(gridDelayMs(1000, 12_345)).toBe(gridDelayMs(1000, 12_345, undefined, PROCESS_GRID_PHASE_MS));
  });

  it('timers of periods that divide each other meet on the same instants', () => {
    for (const now of [0, 17, 499, 1234, 98_765]) {
      const t1 = now + gridDelayMs(1000, now, 0, 250);
      const t2 = now + gridDelayMs(2000, now, 0, 250);
      expect((t1 - 250) % 1000).toBe(0);
      expect((t2 - 250) % 2000).toBe(0);
      expect((t2 - t1) % 1000).toBe(0);
    }
  });

  it('refuses a period that is not positive', () => {
    expect(() => gridDelayMs(0, 5)).toThrow(/period must be positive/);
    expect(() => gridDelayMs(Number.NaN, 5)).toThrow(/period must be positive/);
  });
});

describe('everyOnGrid', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires on the wall-clock grid, reports lateness, and stops', () => {
    vi.useFakeTimers({ now: 1_000_345 });
    const at: number[] = [];
    const late: number[] = [];
    const t = everyOnGrid(
      1000,
      (l) => {
        at.push(Date.now());
        late.push(l);
      },
      { phaseMs: 0 },
    );
    expect(t.dueAt).toBe(1_001_000);
    vi.advanceTimersByTime(654);
    expect(at).toEqual([]);
    vi.advanceTimersByTime(1);
    vi.advanceTimersByTime(2000);
    expect(at).toEqual([1_001_000, 1_002_000, 1_003_000]);
    expect(late).toEqual([0, 0, 0]);
    t.stop();
    expect(t.dueAt).toBeNull();
    vi.advanceTimersByTime(5000);
    expect(at).toHaveLength(3);
  });

  it('a callback that blocks past a grid point fires once, late, then returns to the grid', () => {
    vi.useFakeTimers({ now: 2_000_000 });
    const at: number[] = [];
    const late: number[] = [];
    let block = true;
    const t = everyOnGrid(
      100,
      (l) => {
        at.push(Date.now());
        late.push(l);
        if (block) {
          block = false;
          vi.setSystemTime(Date.now() + 250); // the event loop was busy for 250 ms
        }
      },
      { phaseMs: 0 },
    );
    vi.advanceTimersByTime(100);
    vi.advanceTimersByTime(400);
    t.stop();
    // The first firing re-armed for 2_000_200 and then held the loop for 250 ms: the next firing comes
    // 250 ms behind its grid point (2_000_200 and 2_000_300 are not made up), the one after is on the grid.
    expect(at.slice(0, 3)).toEqual([2_000_100, 2_000_450, 2_000_500]);
    expect(late.slice(0, 3)).toEqual([0, 250, 0]);
  });
});
