import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DiskWatch, diskLevel } from '../../src/monitor/disk.js';
import type { EventInput } from '../../src/events/bus.js';

describe('disk watermarks', () => {
  it.each([
    [10, 'ok'],
    [79.9, 'ok'],
    [80, 'warning'],
    [94, 'warning'],
    [95, 'critical'],
    [100, 'critical'],
  ] as const)('%s %% used is %s (warn 80, critical 95)', (used, level) => {
    expect(diskLevel(used, 80, 95)).toBe(level);
  });

  it('events on level changes only, metrics per volume, missing paths measured at their parent', async () => {
    let used = 50;
    const events: EventInput[] = [];
    const w = new DiskWatch({
      volumes: [
        { name: 'archive', path: '/vol/archive/not/yet' },
        { name: 'data', path: '/data' },
      ],
      warnPercent: 80,
      criticalPercent: 95,
      emit: (e) => events.push(e),
      statfs: async (p) => {
        if (p.startsWith('/vol/archive/')) throw Object.assign(new Error('no'), { code: 'ENOENT' });
        if (p === '/vol/archive' || p === '/data') return { blocks: 1000, bavail: 1000 - used * 10, bsize: 4096 };
        throw Object.assign(new Error('no'), { code: 'ENOENT' });
      },
    });
    await w.sample();
    expect(events).toEqual([]);
    used = 85;
    await w.sample();
    await w.sample();
    expect(events.map((e) => `${e.type}/${e.severity}`)).toEqual(['disk.warning/warning', 'disk.warning/warning']);
    used = 100;
    await w.sample();
    expect(events.slice(2).map((e) => e.type)).toEqual(['disk.critical', 'disk.critical']);
    used = 10;
    await w.sample();
    expect(events.slice(4).map((e) => e.type)).toEqual(['disk.ok', 'disk.ok']);

    const registry = new Registry();
    w.metrics()(registry);
    const text = await registry.metrics();
    expect(text).toContain('nimbus_ha_disk_free_bytes{volume="archive",path="/vol/archive/not/yet"} 3686400');
    expect(text).toContain('nimbus_ha_disk_free_percent{volume="data",path="/data"} 90');
  });
});
