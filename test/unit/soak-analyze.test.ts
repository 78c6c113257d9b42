import { describe, expect, it } from 'vitest';
import { byRole, trend, type Sample } from '../../bench/soak/analyze.js';

const MiB = 2 ** 20;
const sample = (t: number, role: string, rssMib: number, fds = 40, handles = 20): Sample => ({ t, rss: rssMib * MiB, heap: null, fds, handles, role, dirs: {} });

describe('soak analysis', () => {
  it('a flat but noisy RSS fits to about no growth; a steady climb is found', () => {
    const noisy = Array.from({ length: 360 }, (_, i) => sample(i * 10_000, 'primary', 110 + (i % 2 ? 12 : -12)));
    const flat = trend(noisy)!;
    expect(Math.abs(flat.growth_pct)).toBeLessThan(1);
    const leak = Array.from({ length: 360 }, (_, i) => sample(i * 10_000, 'primary', 100 + i * 0.05 + (i % 2 ? 10 : -10)));
    const up = trend(leak)!;
    expect(up.mib_per_hour).toBeGreaterThan(15);
    expect(up.growth_pct).toBeGreaterThan(10);
    expect(trend(leak.slice(0, 2))).toBeNull();
  });

  it('figures per role from settled samples: warm-up and 30 s after a switchover left out, drift at the end of each term', () => {
    const s: Sample[] = [];
    // a: primary 0-300 s, standby 300-600 s, primary 600-900 s.
    for (let t = 0; t < 900_000; t += 10_000) {
      const primary = t < 300_000 || t >= 600_000;
      const justSwitched = t === 300_000 || t === 600_000;
      s.push(sample(t, primary ? 'primary' : 'standby', justSwitched ? 200 : primary ? 120 : 100, primary ? 45 : 31, primary ? 26 : 9));
    }
    // The second primary term ends with 2 more fds and 3 more resources than the first.
    s[s.length - 1] = sample(890_000, 'primary', 121, 47, 29);
    const r = byRole(s, [300_000, 600_000], 120_000);
    expect(Object.keys(r.byRole).sort()).toEqual(['primary', 'standby']);
    expect(r.byRole.primary.terms).toBe(2);
    expect(r.byRole.standby.terms).toBe(1);
    // The 200 MiB samples right after each switchover are not settled.
    expect(r.byRole.primary.rss_mib.first).toBe(120);
    expect(r.byRole.standby.rss_mib.median).toBe(100);
    expect(r.byRole.primary.fds_drift_max).toBe(2);
    expect(r.byRole.primary.handles_drift_max).toBe(3);
    // Growth in the role the node had after warm-up (primary): 120 → 121.
    expect(r.growth).toBeCloseTo(0.8, 1);
  });

  it('splits RSS into its anonymous part, which a leak grows, and its file-backed part', () => {
    // File pages step up once (new code run at the first role change); anonymous memory climbs steadily.
    const s: Sample[] = Array.from({ length: 120 }, (_, i) => {
      const anon = 50 + i * 0.1;
      const file = i < 30 ? 45 : 51;
      return { ...sample(i * 10_000, 'primary', anon + file), rssAnon: anon * MiB, rssFile: file * MiB };
    });
    const r = byRole(s, [], 0).byRole.primary;
    expect(r.rss_anon_mib.first).toBe(50);
    expect(r.rss_anon_mib.last).toBeCloseTo(61.9, 1);
    expect(r.rss_file_mib).toEqual({ first: 45, last: 51 });
    expect(r.rss_anon_trend!.mib_per_hour).toBeCloseTo(36, 0);
    // Without /proc figures the parts are null, not zero.
    const bare = byRole([sample(0, 'standby', 100), sample(10_000, 'standby', 101), sample(20_000, 'standby', 102)], [], 0).byRole.standby;
    expect(bare.rss_anon_mib).toEqual({ first: null, last: null });
    expect(bare.rss_anon_trend).toBeNull();
  });
});
