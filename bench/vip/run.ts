/**
 * VIP failover benchmark: client-observed gap when the primary crashes (kill -9 of its HA daemon and
 * its service), keepalived (VRRP, default and fastest advert_int) against nimbus-ha with a linux-ip
 * VIP, in network namespaces on this machine. Needs root, keepalived and iputils-arping
 * (scripts/install-system-deps.sh). Prints one JSON object, then a table.
 *   node dist/bench/vip/run.js [--cycles N] [--advert 1,0.01] [--tools keepalived,nimbus-ha]
 */
import { join } from 'node:path';
import { netnsUnavailableReason } from '../../test/helpers/netns.js';
import { summarize } from './harness.js';
import { runKeepalivedCycles } from './keepalived.js';
import { runNimbusCycles } from './nimbus.js';

interface Row {
  tool: string;
  setting: string;
  gapsMs: Array<number | null>;
  summary: ReturnType<typeof summarize>;
  failed: number;
  note?: string;
  extra?: Record<string, unknown>;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function row(tool: string, setting: string, gaps: Array<number | null>, note?: string, extra?: Record<string, unknown>): Row {
  const ok = gaps.filter((g): g is number => g !== null);
  return { tool, setting, gapsMs: gaps.map((g) => (g === null ? null : Math.round(g * 10) / 10)), summary: summarize(ok), failed: gaps.length - ok.length, note, extra };
}

/** Median of a numeric field over the recorded failover events (how the gap splits up). */
function medianOf(events: Array<Record<string, unknown> | null>, key: string): number | null {
  const xs = events.map((e) => e?.[key]).filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
  return xs.length ? xs[Math.floor((xs.length - 1) / 2)] : null;
}

async function main(): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) {
    console.log(JSON.stringify({ bench: 'vip', skipped: reason }));
    return;
  }
  const cycles = Number(arg('cycles', '10'));
  // 1 s is keepalived's default; 0.01 s (VRRPv3, centiseconds) is the smallest interval it accepts.
  const adverts = arg('advert', '1,0.01').split(',').map(Number);
  const tools = arg('tools', 'keepalived,nimbus-ha').split(',');
  const rows: Row[] = [];
  if (tools.includes('nimbus-ha')) {
    const cliPath = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    try {
      const n = await runNimbusCycles({ cycles, cliPath });
      if (n) {
        const t = n.timings;
        rows.push(
          row('nimbus-ha', `linux-ip dad off, hb ${t.heartbeatMs} / dead ${t.deadAfterMs} / lease ${t.leaseMs} ms`, n.gapsMs, undefined, {
            failoverMedianMs: Object.fromEntries(['detect_ms', 'election_ms', 'promote_ms', 'vip_ms', 'since_peer_dead_ms'].map((k) => [k, medianOf(n.failovers, k)])),
            leftoverRemoved: n.leftoverRemoved,
          }),
        );
      } else rows.push(row('nimbus-ha', 'linux-ip', [], `agent not built (${cliPath})`));
    } catch (err) {
      rows.push(row('nimbus-ha', 'linux-ip', [], (err as Error).message));
    }
  }
  if (tools.includes('keepalived')) {
    for (const advertInt of adverts) {
      try {
        const r = await runKeepalivedCycles({ cycles, advertInt });
        rows.push(row('keepalived', `VRRPv${r.vrrpVersion} advert_int ${advertInt}s${advertInt === 1 ? ' (default)' : ''}`, r.gapsMs));
      } catch (err) {
        rows.push(row('keepalived', `advert_int ${advertInt}s`, [], (err as Error).message));
      }
    }
  }
  const nimbus = rows.find((r) => r.tool === 'nimbus-ha');
  const kaDefault = rows.find((r) => r.tool === 'keepalived' && r.setting.includes('advert_int 1s'));
  const ratio =
    nimbus && kaDefault && nimbus.summary.n > 0 && kaDefault.summary.n > 0
      ? { p50: Math.round((kaDefault.summary.p50Ms / nimbus.summary.p50Ms) * 100) / 100, p99: Math.round((kaDefault.summary.p99Ms / nimbus.summary.p99Ms) * 100) / 100 }
      : null;
  console.log(JSON.stringify({ bench: 'vip', cycles, pollMs: 10, rows, keepalivedDefaultOverNimbus: ratio }));
  console.log('');
  console.log(`${'tool'.padEnd(11)} ${'setting'.padEnd(56)} ${'n'.padStart(3)} ${'fail'.padStart(5)} ${'min ms'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`);
  for (const r of rows) {
    const s = r.summary;
    const cells = [r.tool.padEnd(11), r.setting.padEnd(56), String(s.n).padStart(3), String(r.failed).padStart(5), String(s.minMs).padStart(8), String(s.p50Ms).padStart(8), String(s.p99Ms).padStart(8), String(s.maxMs).padStart(8)];
    console.log(cells.join(' ') + (r.note ? `  (${r.note})` : ''));
  }
  if (ratio) console.log(`\nkeepalived default / nimbus-ha: ${ratio.p50}x at p50, ${ratio.p99}x at p99`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
