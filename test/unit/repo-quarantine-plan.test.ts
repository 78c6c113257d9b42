import { describe, expect, it } from 'vitest';
import { planQuarantine } from '../../src/replication/repo/quarantine.js';
import { PRIMARY_MARKER_KEY } from '../../src/replication/repo/quarantine-keeper.js';

describe('quarantine plan and the rejoin marker', () => {
  it('never expires, merges or counts the marker of the last promotion', () => {
    const day = 86_400_000;
    const now = 100 * day;
    const plan = planQuarantine(
      [
        { key: PRIMARY_MARKER_KEY, etag: 'mm', mtimeMs: now - 90 * day },
        { key: 'nha-quarantine/ev1/VMS/u/a.img', etag: 'aa', mtimeMs: now - 90 * day },
      ],
      new Map(),
      { keepDays: 30, nowMs: now },
    );
    expect(plan.expired).toEqual(['nha-quarantine/ev1/VMS/u/a.img']);
    expect(plan.merge).toEqual([{ from: 'nha-quarantine/ev1/VMS/u/a.img', to: 'VMS/u/a.img' }]);
    expect([...plan.same, ...plan.conflicts]).toEqual([]);
  });
});
