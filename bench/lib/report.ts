/** Shared helpers for benchmarks: percentiles and a plain-text table next to the JSON. */
export { percentile } from '../../src/util/stats.js';
export function table(rows: Record<string, string | number | null>[]): string {
  if (!rows.length) return '';
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i])).join('  ');
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(r[c] ?? '-'))))].join('\n');
}
