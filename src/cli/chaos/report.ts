/**
 * The report of a `nimbus-ha chaos` run: per-path counts and the per-cycle record (also the --json
 * output), the one-cycle progress lines, and the small arithmetic behind them.
 */
import type { Node } from './faults.js';

export interface PathCount {
  acked: number;
  lost: number;
  ambiguous: number;
  /** Acknowledged, on the primary, but not (yet) on the caught-up standby. */
  standby_missing: number;
  /** Not on the primary but kept aside (quarantined) on a node: preserved, not lost. */
  quarantined?: number;
}

export interface CycleReport {
  cycle: number;
  seed: number;
  scenario: string;
  fault: string;
  primary_before: Node | null;
  primary_after: Node | null;
  epoch_after: number | null;
  detect_ms: number | null;
  promote_ms: number | null;
  client_gap_ms: { sql: number; s3: number; ec2: number };
  rows: PathCount;
  images: PathCount;
  files: PathCount;
  double_primary_samples: number;
  epoch_regressions: number;
  panics: number;
  converged: boolean;
  converge_ms: number | null;
  violations: string[];
  notes: Record<string, unknown>;
  ok: boolean;
}

export function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export function gapOf(ackedAt: number[], since: number, until: number): number {
  let last = since;
  let worst = 0;
  for (const t of ackedAt) {
    if (t < since) continue;
    if (t > until) break;
    worst = Math.max(worst, t - last);
    last = t;
  }
  return Math.max(worst, until - last);
}

export function formatCycle(r: CycleReport): string {
  const pc = (x: PathCount) => `${x.acked}/${x.lost}/${x.ambiguous}${x.standby_missing ? ` (standby missing ${x.standby_missing})` : ''}${x.quarantined ? ` (kept aside ${x.quarantined})` : ''}`;
  return [
    `${r.ok ? 'ok  ' : 'FAIL'} cycle ${r.cycle} [${r.scenario}] seed ${r.seed}: ${r.fault}`,
    `     primary ${r.primary_before ?? '-'} -> ${r.primary_after ?? '-'} (epoch ${r.epoch_after ?? '-'}); detect ${r.detect_ms ?? '-'} ms, promote ${r.promote_ms ?? '-'} ms; client gap sql ${r.client_gap_ms.sql} / s3 ${r.client_gap_ms.s3} / ec2 ${r.client_gap_ms.ec2} ms`,
    `     acked/lost/ambiguous: rows ${pc(r.rows)}, images ${pc(r.images)}, files ${pc(r.files)}; double-primary ${r.double_primary_samples}; panics ${r.panics}; converged ${r.converged ? `in ${r.converge_ms} ms` : 'NO'}`,
  ].join('\n');
}
