/**
 * VIP failover benchmark: client-observed gap when the primary crashes (kill -9 of its HA daemon and
 * its service), keepalived (VRRP, default and fastest advert_int) against nimbus-ha with a linux-ip
 * VIP, in network namespaces on this machine. Needs root, keepalived and iputils-arping
 * (scripts/install-system-deps.sh). Prints one JSON object, then a table.
 *   node dist/bench/vip/run.js [--cycles N] [--advert 1,0.1,0.01]
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
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function row(tool: string, setting: string, gaps: Array<number | null>, note?: string): Row {
  const ok = gaps.filter((g): g is number => g !== null);
  return { tool, setting, gapsMs: gaps.map((g) => (g === null ? null : Math.round(g * 10) / 10)), summary: summarize(ok), failed: gaps.length - ok.length, note };
}

async function main(): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) {
    console.log(JSON.stringify({ bench: 'vip', skipped: reason }));
    return;
  }
  const cycles = Number(arg('cycles', '5'));
  const adverts = arg('advert', '1,0.1,0.01').split(',').map(Number);
  const rows: Row[] = [];
  for (const advertInt of adverts) {
    const r = await runKeepalivedCycles({ cycles, advertInt });
    rows.push(row('keepalived', `VRRPv${r.vrrpVersion} advert_int ${advertInt}s`, r.gapsMs));
  }
  const cliPath = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
  try {
    const n = await runNimbusCycles({ cycles, cliPath });
    if (n) rows.push(row('nimbus-ha', `heartbeat ${n.timings.heartbeatMs} ms, dead after ${n.timings.deadAfterMs} ms, lease ${n.timings.leaseMs} ms`, n.gapsMs));
    else rows.push(row('nimbus-ha', 'linux-ip', [], `agent not built (${cliPath})`));
  } catch (err) {
    rows.push(row('nimbus-ha', 'linux-ip', [], (err as Error).message));
  }
  console.log(JSON.stringify({ bench: 'vip', cycles, pollMs: 10, rows }));
  console.log('');
  console.log('tool        setting                                             n  fail  min ms  median ms  max ms');
  for (const r of rows) {
    const s = r.summary;
    const cells = [r.tool.padEnd(11), r.setting.padEnd(50), String(s.n).padStart(3), String(r.failed).padStart(5), String(s.minMs).padStart(7), String(s.medianMs).padStart(10), String(s.maxMs).padStart(7)];
    console.log(cells.join(' ') + (r.note ? `  (${r.note})` : ''));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
