/**
 * Failover benchmark: N kill -9 cycles of the primary sidecar with a client polling the service through
 * the VIP every 10 ms (client-observed gap), then a soak with 30 % loss on one of two heartbeat paths to
 * count false failovers. Prints one JSON object and a table.
 *
 *   npm run bench:failover -- [--cycles 20] [--soak-seconds 60] [--profile fast|frugal]
 *
 * --profile sets timings.profile in both nodes' config (default: fast, the default timings).
 */
import { parseArgs } from 'node:util';
import { Cluster, GapProbe, SplitBrainChecker } from '../../fixtures/cluster.js';
import { percentile, table } from '../lib/report.js';
import { TIMING_PROFILES, type TimingProfile } from '../../src/config/schema.js';

const { values } = parseArgs({
  options: { cycles: { type: 'string', default: '20' }, 'soak-seconds': { type: 'string', default: '60' }, profile: { type: 'string', default: 'fast' } },
});
const cycles = Number(values.cycles);
const soakSeconds = Number(values['soak-seconds']);
const profile = values.profile as TimingProfile;
if (!(cycles >= 1) || !(soakSeconds >= 0) || !(profile in TIMING_PROFILES)) {
  console.error(`usage: --cycles N (>= 1) --soak-seconds N (>= 0) --profile ${Object.keys(TIMING_PROFILES).join('|')}`);
  process.exit(2);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const cluster = new Cluster({ timings: { profile } });
  const gaps: number[] = [];
  const detect: number[] = [];
  /** From the first campaign to the granted election: mostly waiting out the old primary's lease at the witness. */
  const election: number[] = [];
  let splitBrain = 0;
  let checks = 0;
  try {
    await cluster.start();
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
    const report = {
      bench: 'failover',
      timings,
      cycles,
      client_gap_ms: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: Math.max(...gaps), all: gaps },
      detect_ms: { p50: percentile(detect, 50), p99: percentile(detect, 99) },
      election_ms: { p50: percentile(election, 50), p99: percentile(election, 99), all: election },
      split_brain_observed: splitBrain + soakChecker.observed,
      split_brain_checks: checks + soakChecker.checks,
      soak: { seconds: soakSeconds, loss_on_one_path: 0.3, false_failovers: falseFailovers, epoch_before: epochBefore, epoch_after: epochAfter },
      // The targets are for the default timings; the frugal profile trades failover time for idle CPU.
      targets: profile === 'fast' ? { p50_ms: 1000, p99_ms: 2000, false_failovers: 0 } : { false_failovers: 0 },
    };
    console.log(JSON.stringify(report));
    console.log(
      table([
        { metric: 'client gap p50 (ms)', value: report.client_gap_ms.p50, target: profile === 'fast' ? '<= 1000' : '-' },
        { metric: 'client gap p99 (ms)', value: report.client_gap_ms.p99, target: profile === 'fast' ? '<= 2000' : '-' },
        { metric: 'timings: heartbeat / dead-after / lease (ms)', value: timings ? `${timings.heartbeatMs} / ${timings.deadAfterMs} / ${timings.leaseMs} (${timings.profile})` : '?', target: '-' },
        { metric: 'detection p50 (ms)', value: report.detect_ms.p50, target: '-' },
        { metric: 'election p50 (ms)', value: report.election_ms.p50, target: '-' },
        { metric: `false failovers (${soakSeconds}s, 30% loss on 1 of 2 paths)`, value: falseFailovers, target: '0' },
        { metric: 'split brain observed', value: report.split_brain_observed, target: '0' },
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
