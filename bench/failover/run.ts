/**
 * Failover benchmark: N kill -9 cycles of the primary sidecar with a client polling the service through
 * the VIP every 10 ms (client-observed gap), then a soak with 30 % loss on one of two heartbeat paths to
 * count false failovers. Prints one JSON object and a table.
 *
 *   npm run bench:failover -- [--cycles 20] [--soak-seconds 60] [--profile fast|frugal|lan]
 *                              [--heartbeat-ms N --dead-after-ms N --lease-ms N [--request-timeout-ms N]]
 *                              [--cpu-hogs N] [--gc-pressure] [--coordinator witness|etcd|both]
 *
 * --coordinator  the third vote: the witness (default), a one-member etcd on loopback (Debian etcd-server,
 *                election timeout 500 ms: 1 s lease TTLs), or both, one after the other in the same run,
 *                with the etcd figures compared to the witness's (target: gap within 20 %).
 * --profile sets timings.profile in both nodes' config (default: fast, the default timings); the explicit
 * timings override the profile's fields one by one, as in the config. Stress, for the whole run (cycles and
 * soak), so false failovers are counted under it:
 * --cpu-hogs N   N busy-loop processes at nice 0 (N = the core count saturates the machine); the bench
 *                process (its path proxies are the heartbeat network) and the witness (a third
 *                machine) then run at nice -5 when root, as they would not share the head nodes' cores;
 * --gc-pressure  a heap-churning load inside each sidecar (gc-churn.ts: ~20 MB/s of short-lived objects
 *                and a 32 MiB long-lived set turning over), so heartbeats compete with its garbage collector.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cluster, GapProbe, SplitBrainChecker } from '../../fixtures/cluster.js';
import { percentile, table } from '../lib/report.js';
import { TIMING_PROFILES, type TimingProfile } from '../../src/config/schema.js';
import { EtcdCluster, etcdMissing } from '../../fixtures/etcd.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '20' },
    'soak-seconds': { type: 'string', default: '60' },
    profile: { type: 'string', default: 'fast' },
    'heartbeat-ms': { type: 'string' },
    'dead-after-ms': { type: 'string' },
    'lease-ms': { type: 'string' },
    'request-timeout-ms': { type: 'string' },
    'cpu-hogs': { type: 'string', default: '0' },
    'gc-pressure': { type: 'boolean', default: false },
    coordinator: { type: 'string', default: 'witness' },
  },
});
const cycles = Number(values.cycles);
const soakSeconds = Number(values['soak-seconds']);
const profile = values.profile as TimingProfile;
const cpuHogs = Number(values['cpu-hogs']);
const gcPressure = values['gc-pressure'] === true;
const coordinatorArg = values.coordinator as string;
const kinds: ('witness' | 'etcd')[] = coordinatorArg === 'both' ? ['witness', 'etcd'] : coordinatorArg === 'etcd' ? ['etcd'] : coordinatorArg === 'witness' ? ['witness'] : [];
const explicit = (name: string): number | undefined => (values[name as keyof typeof values] === undefined ? undefined : Number(values[name as keyof typeof values]));
const overrides = { heartbeatMs: explicit('heartbeat-ms'), deadAfterMs: explicit('dead-after-ms'), leaseMs: explicit('lease-ms'), requestTimeoutMs: explicit('request-timeout-ms') };
if (
  !(cycles >= 1) ||
  !(soakSeconds >= 0) ||
  !(profile in TIMING_PROFILES) ||
  !(Number.isInteger(cpuHogs) && cpuHogs >= 0 && cpuHogs <= 16) ||
  kinds.length === 0 ||
  Object.values(overrides).some((v) => v !== undefined && !(Number.isInteger(v) && v >= 10))
) {
  console.error(
    `usage: --cycles N (>= 1) --soak-seconds N (>= 0) --profile ${Object.keys(TIMING_PROFILES).join('|')} [--heartbeat-ms N --dead-after-ms N --lease-ms N --request-timeout-ms N (integers >= 10)] [--cpu-hogs N (0-16)] [--gc-pressure] [--coordinator witness|etcd|both]`,
  );
  process.exit(2);
}
/** Only the fields given: the config fills the rest from the profile. */
const timingsOpt = { profile, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };

/** nice -5 for the given processes; what was done, for the report. */
function raisePriority(pids: (number | undefined)[]): string {
  try {
    for (const pid of pids) if (pid) setPriority(pid, -5);
    return 'nice -5 (path proxies in the bench process, witness)';
  } catch (err) {
    return `unchanged (${(err as NodeJS.ErrnoException).code ?? String(err)}: not root)`;
  }
}

/** N busy loops for the whole run, killed by PID at the end (and on a signal). */
function startHogs(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What one run (one coordinator) measured. */
type RunReport = Record<string, any> & { client_gap_ms: { p50: number | null; p99: number | null }; met: boolean };

async function runOne(kind: 'witness' | 'etcd'): Promise<RunReport> {
  const churn = fileURLToPath(new URL('./gc-churn.js', import.meta.url));
  let etcd: EtcdCluster | null = null;
  if (kind === 'etcd') {
    etcd = new EtcdCluster(1);
    cleanups.add(() => etcd!.stop());
    await etcd.start();
  }
  const cluster = new Cluster({
    timings: timingsOpt,
    ...(gcPressure ? { sidecarNodeArgs: ['--import', churn] } : {}),
    ...(etcd ? { witness: false, coordinator: { kind: 'etcd' as const, endpoints: etcd.endpoints, prefix: '/nimbus-ha/bench-failover/' } } : {}),
  });
  const gaps: number[] = [];
  const detect: number[] = [];
  /** From the first campaign to the granted election: mostly waiting out the old primary's lease at the witness. */
  const election: number[] = [];
  let splitBrain = 0;
  let checks = 0;
  try {
    await cluster.start();
    // With --cpu-hogs the busy loops stand for load on the two head nodes. The heartbeat "network" here
    // is this process (the path proxies) and the witness stands for a third machine: neither would share
    // the head nodes' cores, so both run at a higher priority than the hogs and the sidecars (root only).
    const networkPriority = cpuHogs > 0 ? raisePriority([process.pid, cluster.witness?.pid, ...(etcd?.members.map((m) => m.proc?.pid) ?? [])]) : 'unchanged (no CPU hogs)';
    await cluster.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 30_000, 'cluster up');
    // The timings the nodes actually run with, as /status reports them.
    const timings = (await cluster.status('a'))?.timings as Record<string, unknown> | undefined;
    const checker = new SplitBrainChecker([cluster.nodes.a.url, cluster.nodes.b.url], 10);
    checker.start();
    for (let i = 0; i < cycles; i++) {
      const victim = (await cluster.primary())!;
      const survivor = victim === 'a' ? 'b' : 'a';
      const probe = new GapProbe(cluster.vipUrl, 10);
      probe.start();
      await sleep(400);
      const t = performance.now();
      cluster.kill(victim);
      await cluster.waitFor((a, b) => (survivor === 'a' ? a : b)?.role === 'primary', 20_000, `cycle ${i}: ${survivor} primary`);
      // An answer sent after the survivor was seen primary (a request racing the kill may still have
      // been answered by the victim).
      await probe.answeredAfter(performance.now(), 10_000);
      await sleep(100);
      probe.stop();
      gaps.push(probe.gapAfter(t));
      const ev = (await cluster.events(survivor, 'failover')).at(-1);
      if (typeof ev?.details?.detect_ms === 'number') detect.push(ev.details.detect_ms);
      if (typeof ev?.details?.election_ms === 'number') election.push(ev.details.election_ms);
      cluster.startNode(victim);
      await cluster.waitFor((a, b) => (victim === 'a' ? a : b)?.role === 'standby', 20_000, `cycle ${i}: ${victim} standby`);
      process.stderr.write(`cycle ${i + 1}/${cycles}: gap ${gaps.at(-1)} ms\n`);
    }
    checker.stop();
    splitBrain += checker.observed;
    checks += checker.checks;

    // Soak: 30 % loss on one of the two paths in both directions; count false failovers.
    const primaryBefore = await cluster.primary();
    const epochBefore = (await cluster.status(primaryBefore!))!.epoch as number;
    cluster.nodes.a.inbound[0].setLoss(0.3);
    cluster.nodes.b.inbound[0].setLoss(0.3);
    const soakChecker = new SplitBrainChecker([cluster.nodes.a.url, cluster.nodes.b.url], 50);
    soakChecker.start();
    await sleep(soakSeconds * 1000);
    soakChecker.stop();
    const primaryAfter = await cluster.primary();
    const epochAfter = (await cluster.status(primaryAfter ?? 'a'))?.epoch as number;
    const falseFailovers = epochAfter - epochBefore;
    // What moved the role during the soak, as each node recorded it (why a node fenced or promoted).
    const soakStartIso = new Date(Date.now() - soakSeconds * 1000).toISOString();
    const soakEvents: { node: string; type: string; time: string; message: string }[] = [];
    for (const n of ['a', 'b'] as const) {
      for (const e of await cluster.events(n).catch(() => [] as any[])) {
        if (String(e.time) >= soakStartIso && /^(failover|fenced|demoted|promoted|lease|peer_dead|peer_lost|election)/.test(String(e.type))) {
          soakEvents.push({ node: n, type: e.type, time: e.time, message: String(e.message).slice(0, 200) });
        }
      }
    }
    // The targets of the named profiles as they ship (explicit timings have none but no false failovers);
    // frugal trades failover time for idle CPU.
    const shipped = Object.values(overrides).every((v) => v === undefined);
    const targets: { p50_ms?: number; p99_ms?: number; false_failovers: number } =
      shipped && profile === 'fast' ? { p50_ms: 1000, p99_ms: 2000, false_failovers: 0 } : shipped && profile === 'lan' ? { p50_ms: 200, p99_ms: 250, false_failovers: 0 } : { false_failovers: 0 };
    const report = {
      bench: 'failover',
      coordinator: kind,
      timings,
      cycles,
      client_gap_ms: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: Math.max(...gaps), all: gaps },
      detect_ms: { p50: percentile(detect, 50), p99: percentile(detect, 99) },
      election_ms: { p50: percentile(election, 50), p99: percentile(election, 99), all: election },
      split_brain_observed: splitBrain + soakChecker.observed,
      split_brain_checks: checks + soakChecker.checks,
      soak: { seconds: soakSeconds, loss_on_one_path: 0.3, false_failovers: falseFailovers, epoch_before: epochBefore, epoch_after: epochAfter, cpu_hogs: cpuHogs, gc_pressure: gcPressure, network_priority: networkPriority, events: soakEvents },
      targets,
      met: (targets.p50_ms === undefined || (percentile(gaps, 50) ?? Infinity) <= targets.p50_ms) && (targets.p99_ms === undefined || (percentile(gaps, 99) ?? Infinity) <= targets.p99_ms) && falseFailovers === 0 && splitBrain + soakChecker.observed === 0,
    };
    tables.set(
      kind,
      table([
        { metric: 'client gap p50 (ms)', value: report.client_gap_ms.p50, target: targets.p50_ms ? `<= ${targets.p50_ms}` : '-' },
        { metric: 'client gap p99 (ms)', value: report.client_gap_ms.p99, target: targets.p99_ms ? `<= ${targets.p99_ms}` : '-' },
        { metric: 'timings: heartbeat / dead-after / lease (ms)', value: timings ? `${timings.heartbeatMs} / ${timings.deadAfterMs} / ${timings.leaseMs} (${timings.profile})` : '?', target: '-' },
        { metric: 'detection p50 (ms)', value: report.detect_ms.p50, target: '-' },
        { metric: 'election p50 (ms)', value: report.election_ms.p50, target: '-' },
        { metric: `false failovers (${soakSeconds}s, 30% loss on 1 of 2 paths${cpuHogs ? `, ${cpuHogs} CPU hogs` : ''}${gcPressure ? ', GC pressure' : ''})`, value: falseFailovers, target: '0' },
        { metric: 'split brain observed', value: report.split_brain_observed, target: '0' },
      ]),
    );
    return report;
  } finally {
    await cluster.stop();
    if (etcd) {
      await etcd.stop();
      cleanups.clear();
    }
  }
}

/** Each run's table, printed after its JSON (one run) or before the comparison (both). */
const tables = new Map<'witness' | 'etcd', string>();

/** Processes to stop when the bench is interrupted. */
const cleanups = new Set<() => Promise<void>>();

async function main(): Promise<void> {
  if (kinds.includes('etcd') && etcdMissing()) {
    console.error(`--coordinator ${coordinatorArg}: ${etcdMissing()}`);
    process.exit(2);
  }
  const hogs = startHogs(cpuHogs);
  const stopHogs = () => {
    for (const h of hogs) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
  };
  const interrupted = (code: number) => () => {
    stopHogs();
    void Promise.all([...cleanups].map((f) => f().catch(() => undefined))).then(() => process.exit(code));
  };
  process.once('SIGINT', interrupted(130));
  process.once('SIGTERM', interrupted(143));
  try {
    const runs: Partial<Record<'witness' | 'etcd', RunReport>> = {};
    for (const kind of kinds) runs[kind] = await runOne(kind);
    if (kinds.length === 1) {
      console.log(JSON.stringify(runs[kinds[0]]));
      console.log(tables.get(kinds[0]));
      return;
    }
    // The same run, the same machine: etcd's gap against the witness's (target within 20 %).
    const w = runs.witness!;
    const e = runs.etcd!;
    const ratio = (x: number | null, y: number | null) => (x !== null && y !== null && y > 0 ? Math.round((x / y) * 100) / 100 : null);
    const comparison = {
      p50_ratio: ratio(e.client_gap_ms.p50, w.client_gap_ms.p50),
      p99_ratio: ratio(e.client_gap_ms.p99, w.client_gap_ms.p99),
      target_ratio: 1.2,
      false_failovers: { witness: w.soak.false_failovers, etcd: e.soak.false_failovers },
      double_primaries: { witness: w.split_brain_observed, etcd: e.split_brain_observed },
    };
    const met = comparison.p50_ratio !== null && comparison.p50_ratio <= 1.2 && comparison.p99_ratio !== null && comparison.p99_ratio <= 1.2 && e.soak.false_failovers === 0 && e.split_brain_observed === 0;
    console.log(JSON.stringify({ bench: 'failover', coordinators: runs, comparison, met }));
    for (const k of kinds) console.log(`${k}:\n${tables.get(k)}\n`);
    console.log(
      table([
        { metric: 'client gap p50 (ms)', witness: w.client_gap_ms.p50, etcd: e.client_gap_ms.p50, 'etcd / witness': comparison.p50_ratio, target: '<= 1.2' },
        { metric: 'client gap p99 (ms)', witness: w.client_gap_ms.p99, etcd: e.client_gap_ms.p99, 'etcd / witness': comparison.p99_ratio, target: '<= 1.2' },
        { metric: 'false failovers', witness: w.soak.false_failovers, etcd: e.soak.false_failovers, 'etcd / witness': '-', target: '0' },
        { metric: 'double primaries observed', witness: w.split_brain_observed, etcd: e.split_brain_observed, 'etcd / witness': '-', target: '0' },
      ]),
    );
  } finally {
    stopHogs();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
