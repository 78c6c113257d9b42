/**
 * Idle overhead of a sidecar: CPU (% of one core) and RSS of each node's process over a window while the
 * cluster heartbeats on two paths, renews its lease with the witness, and monitors a service (HTTP probe
 * every 2 s). Reads /proc, so it runs on Linux. Prints one JSON object and a table.
 *
 *   npm run bench:overhead -- [--seconds 60] [--heartbeat-ms 100]
 *
 * --heartbeat-ms sets the heartbeat interval (dead-after 5×, lease 7×), to show the CPU / failover-time
 * trade-off.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Cluster } from '../../fixtures/cluster.js';
import { table } from '../lib/report.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, 'heartbeat-ms': { type: 'string', default: '100' } } });
const seconds = Number(values.seconds);
const heartbeatMs = Number(values['heartbeat-ms']);
const CLK_TCK = 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function main(): Promise<void> {
  const cluster = new Cluster({
    timings: { heartbeatMs, deadAfterMs: heartbeatMs * 5, leaseMs: heartbeatMs * 7 },
    extraConfig: (_name, spec) => ({
      services: [{ name: 'demo', control: { kind: 'none' }, probe: { kind: 'http', url: `http://127.0.0.1:${spec.servicePort}/` }, intervalMs: 2000 }],
    }),
  });
  try {
    await cluster.start();
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'cluster up');
    await new Promise((r) => setTimeout(r, 5000)); // let start-up work settle
    const pids = { a: cluster.nodes.a.proc!.pid!, b: cluster.nodes.b.proc!.pid!, witness: cluster.witness!.pid! };
    const t0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuTicks(p)]));
    const peak: Record<string, number> = { a: 0, b: 0, witness: 0 };
    const start = Date.now();
    while (Date.now() - start < seconds * 1000) {
      for (const [k, p] of Object.entries(pids)) peak[k] = Math.max(peak[k], rssMb(p));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const elapsed = (Date.now() - start) / 1000;
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, (((cpuTicks(p) - t0[k]) / CLK_TCK) / elapsed) * 100]));
    const report = {
      bench: 'overhead',
      seconds: Math.round(elapsed),
      config: { heartbeatMs, deadAfterMs: heartbeatMs * 5, leaseMs: heartbeatMs * 7, paths: 2, witness: true, probes: 'http every 2 s' },
      primary: { cpu_percent: +cpu.a.toFixed(2), rss_mb_peak: +peak.a.toFixed(1) },
      standby: { cpu_percent: +cpu.b.toFixed(2), rss_mb_peak: +peak.b.toFixed(1) },
      witness: { cpu_percent: +cpu.witness.toFixed(2), rss_mb_peak: +peak.witness.toFixed(1) },
      targets: { cpu_percent: 0.5, rss_mb: 100, ha_oscar_cpu_percent: 0.9 },
    };
    console.log(JSON.stringify(report));
    console.log(
      table([
        { process: 'primary sidecar', 'cpu % of a core': report.primary.cpu_percent, 'peak RSS MB': report.primary.rss_mb_peak, target: '< 0.5 % / < 100 MB' },
        { process: 'standby sidecar', 'cpu % of a core': report.standby.cpu_percent, 'peak RSS MB': report.standby.rss_mb_peak, target: '< 0.5 % / < 100 MB' },
        { process: 'witness', 'cpu % of a core': report.witness.cpu_percent, 'peak RSS MB': report.witness.rss_mb_peak, target: '-' },
      ]),
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
