/**
 * Failover benchmark: N kill -9 cycles of the primary sidecar with a client polling the service through
 * the VIP every 10 ms (client-observed gap), then a soak with 30 % loss on one of two heartbeat paths to
 * count false failovers. Prints one JSON object and a table.
 *
 *   npm run bench:failover -- [--cycles 20] [--soak-seconds 60]
 */
import { parseArgs } from 'node:util';
import { Cluster, GapProbe, SplitBrainChecker } from '../../fixtures/cluster.js';
import { percentile, table } from '../lib/report.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '20' }, 'soak-seconds': { type: 'string', default: '60' } } });
const cycles = Number(values.cycles);
const soakSeconds = Number(values['soak-seconds']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const cluster = new Cluster();
  const gaps: number[] = [];
  const detect: number[] = [];
  let splitBrain = 0;
  let checks = 0;
  try {
    await cluster.start();
    await cluster.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 30_000, 'cluster up');
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
      const until = Date.now() + 10_000;
      while (Date.now() < until && !probe.samples.some((s) => s.t > t && s.ok)) await sleep(10);
      await sleep(100);
      probe.stop();
      gaps.push(probe.gapAfter(t));
      const ev = (await cluster.events(survivor, 'failover')).at(-1);
      if (typeof ev?.details?.detect_ms === 'number') detect.push(ev.details.detect_ms);
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
      timings: { heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700 },
      cycles,
      client_gap_ms: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: Math.max(...gaps), all: gaps },
      detect_ms: { p50: percentile(detect, 50), p99: percentile(detect, 99) },
      split_brain_observed: splitBrain + soakChecker.observed,
      split_brain_checks: checks + soakChecker.checks,
      soak: { seconds: soakSeconds, loss_on_one_path: 0.3, false_failovers: falseFailovers, epoch_before: epochBefore, epoch_after: epochAfter },
      targets: { p50_ms: 1000, p99_ms: 2000, false_failovers: 0 },
    };
    console.log(JSON.stringify(report));
    console.log(
      table([
        { metric: 'client gap p50 (ms)', value: report.client_gap_ms.p50, target: '<= 1000' },
        { metric: 'client gap p99 (ms)', value: report.client_gap_ms.p99, target: '<= 2000' },
        { metric: 'detection p50 (ms)', value: report.detect_ms.p50, target: '-' },
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
