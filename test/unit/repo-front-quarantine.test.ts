import { describe, expect, it } from 'vitest';
import { originalKey, planQuarantine } from '../../src/replication/repo/quarantine.js';

describe('quarantine merge plan', () => {
  it('merges back keys the bucket lacks, keeps conflicts, drops redundant copies, expires by age', () => {
    const day = 86_400_000;
    const now = 100 * day;
    const plan = planQuarantine(
      [
        { key: 'nha-quarantine/ev1/VMS/u/a.img', etag: 'aa', mtimeMs: now - day },
        { key: 'nha-quarantine/ev1/VMS/u/b.img', etag: 'bb', mtimeMs: now - day },
        { key: 'nha-quarantine/ev1/VMS/u/c.img', etag: 'cc', mtimeMs: now - 40 * day },
        { key: 'nha-quarantine/ev2/VMS/u/a.img', etag: 'a2', mtimeMs: now - 2 * day },
      ],
      new Map([
        ['VMS/u/b.img', 'other'],
        ['VMS/u/c.img', 'cc'],
      ]),
      { keepDays: 30, nowMs: now },
    );
    expect(plan.merge).toEqual([{ from: 'nha-quarantine/ev1/VMS/u/a.img', to: 'VMS/u/a.img' }]);
    expect(plan.conflicts).toEqual([{ from: 'nha-quarantine/ev1/VMS/u/b.img', to: 'VMS/u/b.img' }]);
    expect(plan.same).toEqual([{ from: 'nha-quarantine/ev1/VMS/u/c.img', to: 'VMS/u/c.img' }]);
    expect(plan.expired).toEqual(['nha-quarantine/ev1/VMS/u/c.img']);
    expect(originalKey('nha-quarantine/ev/x')).toBe('x');
    expect(originalKey('VMS/x')).toBeNull();
  });
});
