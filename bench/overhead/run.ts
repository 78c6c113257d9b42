/**
 * Idle overhead of a sidecar: CPU (% of one core, user + system, all threads) and peak RSS of each node's
 * process over a window while the cluster heartbeats on two paths, renews its lease with the witness and
 * monitors a service. Reads /proc, so it runs on Linux. Prints one JSON object and a table.
 *
 *   npm run bench:overhead -- [--seconds 60] [--warmup 150] [--heartbeat-ms 100[,200,...] | --profile fast[,frugal]]
 *                              [--transport udp[,http]] [--headnode]
 *
 * Every combination of timings and --transport is one scenario (default: a 100 ms heartbeat over UDP,
 * the default config, and over HTTP for comparison). With --heartbeat-ms, dead-after is 5 and the lease
 * 7 heartbeats, as in the default profile; with --profile, the nodes run with `timings.profile` set and
 * nothing else (src/config/schema.ts, TIMING_PROFILES). Without --headnode each node monitors a small HTTP
 * service at the profile's probe period (`timings.probeMs`: 2 s with `fast`, 5 s with `frugal`);
 * --headnode adds, for each heartbeat interval, a scenario with the whole head node as the demo runs it:
 * the VM service (EC2 and S3 probes at the same period), embedded PostgreSQL streaming to the standby,
 * repository sync (a pass every 0.5 s) and config-file sync.
 *
 * The window starts --warmup seconds after both roles are settled (default 150): start-up work (the
 * standby's clone, first sync passes) and V8's compilation of the code that runs every heartbeat are
 * start-up costs, not idle ones. V8 keeps optimizing rarely-called code (a probe every 2 s, a heartbeat
 * every second) for a few minutes; after 30 s a head-node sidecar still uses about twice its long-run CPU.
 *
 * Each scenario also measures the machine's floor for its heartbeat rate (floor.ts: bare processes that
 * only send and echo the same number of datagrams), to tell the machine's cost per datagram and wake-up
 * from nimbus-ha's own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cluster, type ClusterOptions } from '../../fixtures/cluster.js';
import { table } from '../lib/report.js';
import { TIMING_PROFILES, type TimingProfile } from '../../src/config/schema.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '150' },
    'heartbeat-ms': { type: 'string' },
    profile: { type: 'string' },
    transport: { type: 'string', default: 'udp,http' },
    headnode: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const transports = values.transport!.split(',') as ('udp' | 'http')[];
const profiles = values.profile?.split(',') ?? [];
/** One entry per timings variant: a named profile, or a heartbeat with dead-after and lease at 5 and 7 beats. */
const timingsList: { label: string; heartbeatMs: number; timings: ClusterOptions['timings'] }[] = profiles.length
  ? profiles.map((p) => ({ label: `profile ${p}`, heartbeatMs: TIMING_PROFILES[p as TimingProfile]?.heartbeatMs ?? NaN, timings: { profile: p as TimingProfile } }))
  : (values['heartbeat-ms'] ?? '100')
      .split(',')
      .map(Number)
      .map((hb) => ({ label: `${hb} ms`, heartbeatMs: hb, timings: { heartbeatMs: hb, deadAfterMs: hb * 5, leaseMs: hb * 7 } }));
if (
  !(seconds > 0) ||
  !(warmup >= 0) ||
  (profiles.length > 0 && values['heartbeat-ms'] !== undefined) ||
  timingsList.some((t) => !(t.heartbeatMs >= 10)) ||
  transports.some((t) => t !== 'udp' && t !== 'http')
) {
  console.error(
    `usage: --seconds N --warmup N [--heartbeat-ms N[,N] (>= 10) | --profile ${Object.keys(TIMING_PROFILES).join('|')}[,...]] --transport udp|http[,udp|http] [--headnode]`,
  );
  process.exit(2);
}
const CLK_TCK = 100;
const TARGET = { cpu_percent: 0.5, rss_mb: 100, ha_oscar_cpu_percent: 0.9 };

/** utime + stime of the whole process (every thread), in ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

interface Scenario {
  name: string;
  heartbeatMs: number;
  timings: ClusterOptions['timings'];
  transport: 'udp' | 'http';
  workload: string;
  options: ClusterOptions;
}

interface Result {
  scenario: string;
  heartbeat_ms: number;
  /** The timings the nodes ran with, as their /status reported them. */
  timings: Record<string, unknown> | null;
  transport: string;
  workload: string;
  seconds: number;
  warmup_s: number;
  primary: { cpu_percent: number; rss_mb_peak: number };
  standby: { cpu_percent: number; rss_mb_peak: number };
  witness: { cpu_percent: number; rss_mb_peak: number };
  /** The machine's floor at this rate: bare datagram ping/echo processes, no nimbus-ha (floor.ts). */
  floor: { sender_cpu_percent: number; echo_cpu_percent: number };
}

const floorScript = fileURLToPath(new URL('./floor.js', import.meta.url));

/** Starts the bare echo and ping processes for a heartbeat rate on two paths. */
async function startFloor(heartbeatMs: number): Promise<{ echo: ChildProcess; ping: ChildProcess }> {
  const echo = spawn(process.execPath, [floorScript, 'echo'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    echo.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    echo.once('exit', () => reject(new Error('floor echo process exited')));
  });
  const ping = spawn(process.execPath, [floorScript, 'ping', String(port), String(heartbeatMs), '2'], { stdio: 'ignore' });
  return { echo, ping };
}

async function measure(s: Scenario): Promise<Result> {
  let floor: { echo: ChildProcess; ping: ChildProcess } | null = null;
  const cluster = new Cluster({
    ...s.options,
    transport: s.transport,
    timings: s.timings,
  });
  try {
    await cluster.start();
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 120_000, 'cluster up');
    // Let start-up work settle (JIT, the standby's initial clone and first sync passes).
    await new Promise((r) => setTimeout(r, warmup * 1000));
    const before = await cluster.status('a');
    const epoch = before?.epoch;
    floor = await startFloor(s.heartbeatMs);
    await new Promise((r) => setTimeout(r, 1000));
    const pids = { a: cluster.nodes.a.proc!.pid!, b: cluster.nodes.b.proc!.pid!, witness: cluster.witness!.pid!, floorPing: floor.ping.pid!, floorEcho: floor.echo.pid! };
    const t0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuTicks(p)]));
    const peak: Record<string, number> = { a: 0, b: 0, witness: 0, floorPing: 0, floorEcho: 0 };
    const start = Date.now();
    while (Date.now() - start < seconds * 1000) {
      for (const [k, p] of Object.entries(pids)) peak[k] = Math.max(peak[k], rssMb(p));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const elapsed = (Date.now() - start) / 1000;
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, ((cpuTicks(p) - t0[k]) / CLK_TCK / elapsed) * 100]));
    // Both nodes kept their roles throughout: an idle measurement, not a failover.
    const [a, b] = [await cluster.status('a'), await cluster.status('b')];
    if (a?.role !== 'primary' || b?.role !== 'standby' || a?.epoch !== epoch) {
      throw new Error(`roles changed during the measurement: a=${a?.role} b=${b?.role} epoch ${epoch} -> ${a?.epoch}`);
    }
    const row = (k: string) => ({ cpu_percent: +cpu[k].toFixed(2), rss_mb_peak: +peak[k].toFixed(1) });
    return {
      scenario: s.name,
      heartbeat_ms: s.heartbeatMs,
      timings: (before?.timings as Record<string, unknown> | undefined) ?? null,
      transport: s.transport,
      workload: s.workload,
      seconds: Math.round(elapsed),
      warmup_s: warmup,
      primary: row('a'),
      standby: row('b'),
      witness: row('witness'),
      floor: { sender_cpu_percent: +cpu.floorPing.toFixed(2), echo_cpu_percent: +cpu.floorEcho.toFixed(2) },
    };
  } finally {
    floor?.ping.kill('SIGKILL');
    floor?.echo.kill('SIGKILL');
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const probe = (_name: 'a' | 'b', spec: { servicePort: number }) => ({
    services: [{ name: 'demo', control: { kind: 'none' }, probe: { kind: 'http', url: `http://127.0.0.1:${spec.servicePort}/` } }],
  });
  const scenarios: Scenario[] = [];
  for (const transport of transports) {
    for (const t of timingsList) {
      scenarios.push({ name: `${transport} ${t.label}`, heartbeatMs: t.heartbeatMs, timings: t.timings, transport, workload: 'cluster + HTTP probe at timings.probeMs', options: { extraConfig: probe } });
    }
  }
  if (values.headnode) {
    for (const t of timingsList) {
      scenarios.push({
        name: `head node, ${transports[0]} ${t.label}`,
        heartbeatMs: t.heartbeatMs,
        timings: t.timings,
        transport: transports[0],
        workload: 'head node: VM service probes, PostgreSQL streaming, repository and file sync',
        options: { nimbus: true, db: { sync: 'async' }, repo: true },
      });
    }
  }
  const results: Result[] = [];
  for (const s of scenarios) {
    console.error(`measuring ${s.name} (${s.workload}) for ${seconds} s after ${warmup} s of warm-up ...`);
    results.push(await measure(s));
  }
  console.log(JSON.stringify({ bench: 'overhead', seconds, warmup_s: warmup, targets: TARGET, results }));
  console.log(
    table(
      results.flatMap((r) => [
        { scenario: r.scenario, process: 'primary sidecar', 'cpu % of a core': r.primary.cpu_percent, 'peak RSS MB': r.primary.rss_mb_peak, target: '< 0.5 % / < 100 MB' },
        { scenario: r.scenario, process: 'standby sidecar', 'cpu % of a core': r.standby.cpu_percent, 'peak RSS MB': r.standby.rss_mb_peak, target: '< 0.5 % / < 100 MB' },
        { scenario: r.scenario, process: 'witness', 'cpu % of a core': r.witness.cpu_percent, 'peak RSS MB': r.witness.rss_mb_peak, target: '-' },
        { scenario: r.scenario, process: 'floor: bare datagram sender', 'cpu % of a core': r.floor.sender_cpu_percent, 'peak RSS MB': '-', target: '-' },
        { scenario: r.scenario, process: 'floor: bare datagram echo', 'cpu % of a core': r.floor.echo_cpu_percent, 'peak RSS MB': '-', target: '-' },
      ]),
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
