import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';

/** A bus with a ring of 3: critical events go to their own ring and outlive a flood of ordinary ones. */
function bus() {
  let t = Date.parse('2026-01-01T00:00:00Z');
  return new EventBus('a', () => 1, { ringSize: 3, nowMs: () => t++ });
}

describe('EventBus rings', () => {
  it('recent, since and recentWithSeq merge both rings in emission order, bounded by the limit', () => {
    const b = bus();
    b.emit({ type: 'x', severity: 'info', message: '1' });
    b.emit({ type: 'disk.critical', severity: 'critical', message: '2' });
    for (let i = 3; i <= 7; i++) b.emit({ type: i % 2 ? 'x' : 'y', severity: 'info', message: String(i) });
    b.emit({ type: 'z', severity: 'critical', message: '8' });
    // The ordinary ring keeps 5..7; the critical one keeps 2 and 8.
    expect(b.recent({ limit: 10 }).map((e) => e.message)).toEqual(['2', '5', '6', '7', '8']);
    expect(b.recent({ limit: 2 }).map((e) => e.message)).toEqual(['7', '8']);
    expect(b.recent({ limit: 10, types: ['x'] }).map((e) => e.message)).toEqual(['5', '7']);
    const all = b.recentWithSeq(10);
    expect(all.map((x) => x.e.message)).toEqual(['2', '5', '6', '7', '8']);
    expect(all.map((x) => x.seq)).toEqual([...all.map((x) => x.seq)].sort((p, q) => p - q));
    const after6 = all.find((x) => x.e.message === '6')!.seq;
    expect(b.since(after6).map((x) => x.e.message)).toEqual(['7', '8']);
    expect(b.since(after6, 1).map((x) => x.e.message)).toEqual(['8']);
    expect(b.since(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });
});
