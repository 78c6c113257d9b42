/**
 * The soak's figures from its samples (bench/soak/run.ts), also runnable on a samples file written with
 * --samples: `node dist/bench/soak/analyze.js FILE [--warmup-s 120]` prints the per-node, per-role JSON.
 */
import { readFileSync } from 'node:fs';

export interface Sample {
  t: number;
  rss: number | null;
  heap: number | null;
  /** V8's heap reserved (total), and memory outside it that JavaScript objects hold (Buffers, ArrayBuffers). */
  heapTotal?: number | null;
  external?: number | null;
  /** /proc/PID/status: the anonymous part of RSS (heap, stacks, malloc) and the file-backed part (the node binary's and libraries' pages touched so far). */
  rssAnon?: number | null;
  rssFile?: number | null;
  fds: number | null;
  handles: number | null;
  /** The node's role at the sample (its nimbus_ha_role gauge), null when it did not answer. */
  role: string | null;
  dirs: Record<string, number>;
}

export function pct(end: number, start: number): number {
  return Math.round(((end - start) / start) * 1000) / 10;
}

export interface RoleStats {
  terms: number;
  samples: number;
  rss_mib: { first: number | null; last: number | null; median: number | null };
  rss_growth_pct: number | null;
  /**
   * Least-squares line through every settled RSS sample in this role: its slope, and what it grew over
   * the span of those samples as a share of its value at the start. One sample against another swings
   * by ± 10-15 % with garbage collection and the allocator; a leak is a slope that does not go away.
   */
  rss_trend: { mib_per_hour: number; growth_pct: number; span_min: number } | null;
  /**
   * The same for the two parts of RSS (/proc/PID/status): anonymous memory (the JavaScript heap, malloc,
   * stacks), which a leak grows, and file-backed pages (the node binary's code and data touched so far),
   * which grow once, when a node first runs code it had not run (its first term in the other role).
   */
  rss_anon_mib: { first: number | null; last: number | null };
  rss_anon_trend: RoleStats['rss_trend'];
  rss_file_mib: { first: number | null; last: number | null };
  /** fds / active resources at the end of each term in this role, and the largest difference from the first term's. */
  fds_at_term_end: (number | null)[];
  fds_drift_max: number | null;
  handles_at_term_end: (number | null)[];
  handles_drift_max: number | null;
}

/**
 * Figures per role, from settled samples only (after the warm-up and at least 30 s after a switchover):
 * a term is a run of samples in one role; growth is the last sample in a role over the first, drift the
 * largest difference of a term's last fds / resources from the first term's.
 */
export function byRole(s: Sample[], switchAts: number[], warmupMs: number): { growth: number | null; byRole: Record<string, RoleStats> } {
  const settled = s.filter((x) => x.t >= warmupMs && x.rss !== null && x.role !== null && !switchAts.some((at) => x.t >= at && x.t < at + 30_000));
  const terms: { role: string; samples: Sample[] }[] = [];
  for (const x of settled) {
    const cur = terms.at(-1);
    if (cur && cur.role === x.role) cur.samples.push(x);
    else terms.push({ role: x.role!, samples: [x] });
  }
  const out: Record<string, RoleStats> = {};
  for (const role of new Set(terms.map((t) => t.role))) {
    const mine = terms.filter((t) => t.role === role);
    const ends = mine.map((t) => t.samples.at(-1)!);
    const first = mine[0].samples[0];
    const last = ends.at(-1)!;
    const drift = (f: (x: Sample) => number | null) => {
      const base = f(ends[0]);
      let m: number | null = null;
      for (const e of ends) {
        const v = f(e);
        if (base === null || v === null) continue;
        if (m === null || Math.abs(v - base) > Math.abs(m)) m = v - base;
      }
      return m;
    };
    const all = mine.flatMap((t) => t.samples);
    const mib = (b: number | null) => (b === null ? null : Math.round((b / 2 ** 20) * 10) / 10);
    const sorted = all.map((x) => x.rss!).sort((p, q) => p - q);
    out[role] = {
      terms: mine.length,
      samples: all.length,
      rss_mib: { first: mib(first.rss), last: mib(last.rss), median: sorted.length ? mib(sorted[Math.floor(sorted.length / 2)]) : null },
      rss_trend: trend(all),
      rss_anon_mib: { first: mib(first.rssAnon ?? null), last: mib(last.rssAnon ?? null) },
      rss_anon_trend: trend(all, (x) => x.rssAnon ?? null),
      rss_file_mib: { first: mib(first.rssFile ?? null), last: mib(last.rssFile ?? null) },
      rss_growth_pct: first.rss && last.rss ? pct(last.rss, first.rss) : null,
      fds_at_term_end: ends.map((e) => e.fds),
      fds_drift_max: drift((x) => x.fds),
      handles_at_term_end: ends.map((e) => e.handles),
      handles_drift_max: drift((x) => x.handles),
    };
  }
  const growth = settled.length ? out[settled[0].role!].rss_growth_pct : null;
  return { growth, byRole: out };
}


/** Least-squares fit of RSS (MiB, or the part `of` picks) over time (hours) through the samples. */
export function trend(xs: Sample[], of: (x: Sample) => number | null = (x) => x.rss): RoleStats['rss_trend'] {
  const pts = xs.flatMap((x) => {
    const v = of(x);
    return v === null ? [] : [[x.t / 3_600_000, v / 2 ** 20] as const];
  });
  if (pts.length < 3) return null;
  const n = pts.length;
  const mx = pts.reduce((a, p) => a + p[0], 0) / n;
  const my = pts.reduce((a, p) => a + p[1], 0) / n;
  const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  if (sxx === 0) return null;
  const slope = pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx;
  const t0 = pts[0][0];
  const t1 = pts[n - 1][0];
  const start = my + slope * (t0 - mx);
  return { mib_per_hour: Math.round(slope * 10) / 10, growth_pct: Math.round(((slope * (t1 - t0)) / start) * 1000) / 10, span_min: Math.round((t1 - t0) * 60) };
}

if (process.argv[1]?.endsWith('analyze.js')) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/soak/analyze.js SAMPLES.json [--warmup-s 120]');
    process.exit(2);
  }
  const i = process.argv.indexOf('--warmup-s');
  const warmupMs = (i >= 0 ? Number(process.argv[i + 1]) : 120) * 1000;
  const data = JSON.parse(readFileSync(file, 'utf8')) as { switchovers: { at: number; ok: boolean }[]; samples: Record<string, Sample[]> };
  const ats = data.switchovers.filter((x) => x.ok).map((x) => x.at);
  console.log(JSON.stringify(Object.fromEntries(Object.entries(data.samples).map(([n, s]) => [n, byRole(s, ats, warmupMs)]))));
}
