import { Cluster, GapProbe, SplitBrainChecker, ADMIN_TOKEN } from '../../fixtures/cluster.js';
import { Narrator, VipWatch } from './demo-narrate.js';
import { sayOnStop } from './demo-stop.js';

interface DemoOptions {
  once?: boolean;
  json?: boolean;
  dir?: string;
}

/**
 * The two-node demo on loopback: witness + two sidecars, each fronting a small service through a
 * user-space VIP. Kill -9 the primary, measure the client-observed gap, restart it (it returns as
 * standby), switch back, and report.
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const say = (msg: string) => {
    if (!opts.json) console.log(msg);
  };
  const cluster = new Cluster({ dir: opts.dir });
  const cleanup = cluster.stopOnSignals();
  try {
    say('nimbus-ha demo: witness + nodes a and b on loopback, service behind a user-space VIP');
    await cluster.start();
    say(`  working directory ${cluster.dir}`);
    await cluster.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 30_000, 'a primary and a standby');
    const first = (await cluster.primary())!;
    const second = first === 'a' ? 'b' : 'a';
    const epochBefore = (await cluster.status(first))!.epoch as number;
    say(`1. cluster up: ${first} is primary at epoch ${epochBefore}, ${second} is standby; VIP ${cluster.vipUrl}`);

    const probe = new GapProbe(cluster.vipUrl, 10);
    const checker = new SplitBrainChecker([cluster.nodes.a.url, cluster.nodes.b.url], 10);
    probe.start();
    checker.start();
    await new Promise((r) => setTimeout(r, 1000));

    say(`2. kill -9 the primary sidecar ${first}`);
    const killAt = performance.now();
    cluster.kill(first);
    await cluster.waitFor((a, b) => (second === 'a' ? a : b)?.role === 'primary', 20_000, `${second} to take over`);
    await probe.answeredAfter(performance.now(), 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const failoverGap = probe.gapAfter(killAt);
    const failEv = (await cluster.events(second, 'failover')).at(-1);
    const epochAfter = (await cluster.status(second))!.epoch as number;
    say(`   ${second} promoted at epoch ${epochAfter}; clients saw a gap of ${failoverGap} ms (detection ${failEv?.details?.detect_ms ?? '?'} ms)`);

    say(`3. restart ${first}: it must come back as standby (no preemption)`);
    cluster.startNode(first);
    await cluster.waitFor((a, b) => (first === 'a' ? a : b)?.role === 'standby' && (second === 'a' ? a : b)?.role === 'primary', 20_000, `${first} to rejoin as standby`);
    say(`   ${first} is standby, ${second} stays primary`);

    say(`4. planned switchover back to ${first}`);
    await new Promise((r) => setTimeout(r, 500));
    const swAt = performance.now();
    const sw = await cluster.admin(second, '/admin/switchover', { to: first });
    if (sw.status !== 202) throw new Error(`switchover not accepted: ${JSON.stringify(sw.data)}`);
    await cluster.waitFor((a, b) => (first === 'a' ? a : b)?.role === 'primary' && (second === 'a' ? a : b)?.role === 'standby', 20_000, `${first} to become primary again`);
    await probe.answeredAfter(performance.now(), 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const switchGap = probe.gapAfter(swAt);
    probe.stop();
    checker.stop();
    const finalEpoch = (await cluster.status(first))!.epoch as number;
    say(`   ${first} primary again at epoch ${finalEpoch}; clients saw a gap of ${switchGap} ms`);

    const report = {
      nodes: ['a', 'b'],
      vip: cluster.vipUrl,
      failover: failoverFigures(first, second, failoverGap, failEv, epochBefore, epochAfter),
      rejoin: { node: first, role: 'standby' },
      switchover: { to: first, client_gap_ms: switchGap, epoch_after: finalEpoch },
      split_brain_observed: checker.observed > 0,
      split_brain_checks: checker.checks,
    };
    say(`5. split brain observed: ${report.split_brain_observed ? 'YES' : 'no'} (${checker.checks} checks of both /primary)`);
    if (opts.json) console.log(JSON.stringify(report));
    else {
      console.log('\nsummary');
      console.log(`  failover gap      ${failoverGap} ms (epoch ${epochBefore} -> ${epochAfter})`);
      console.log(`  switchover gap    ${switchGap} ms`);
      console.log(`  split brain       ${report.split_brain_observed ? 'observed' : 'never'}`);
    }
    if (opts.once) return;
    await stayUp(cluster, [`  service via VIP   ${cluster.vipUrl}`], {
      what: 'the witness, sidecars a and b and their services, the path proxies',
      dir: opts.dir,
      cleanup,
      vipOk: (s) => s >= 200 && s < 300,
    });
  } finally {
    if (opts.once) await cleanup();
  }
}

export interface StayUpOptions {
  /** What the stack is made of, named in the Ctrl-C line. */
  what: string;
  /** The directory given with --dir (kept), or undefined (a temp dir the demo removes). */
  dir?: string;
  /** Stops the stack (the function Cluster.stopOnSignals returned). */
  cleanup: () => Promise<void>;
  /** Which VIP answers count as the service answering, for the client gaps of takeovers. */
  vipOk: (status: number) => boolean;
  /** Processes that are not children of the demo (the VM services outlive their sidecars). */
  extraPids?: () => number[];
}

/**
 * Prints where the running demo stack answers (its own lines, then both nodes), then narrates the
 * nodes' events (role changes, takeovers with their client gap, data paths degrading and recovering)
 * until Ctrl-C, which says what it stopped and removed.
 */
export async function stayUp(cluster: Cluster, lines: string[], o: StayUpOptions): Promise<never> {
  console.log('\nThe stack stays up (Ctrl-C to stop):');
  for (const l of lines) console.log(l);
  console.log(`  node a            ${cluster.nodes.a.url}/status   (nimbus-ha status --url ${cluster.nodes.a.url})`);
  console.log(`  node b            ${cluster.nodes.b.url}/status`);
  console.log(`  dashboards        ${cluster.nodes.a.url}/ui   ${cluster.nodes.b.url}/ui   (live; the admin token unlocks switchover, fail-back, maintenance)`);
  console.log(`  admin token       ${ADMIN_TOKEN}`);
  const narrator = new Narrator(
    (['a', 'b'] as const).map((n) => ({ name: n, url: cluster.nodes[n].url })),
    new VipWatch(cluster.vipUrl, o.vipOk),
    (l) => console.log(l),
  );
  sayOnStop({ what: o.what, dir: cluster.dir, ownsDir: o.dir === undefined, cleanup: o.cleanup, extraPids: o.extraPids, before: () => narrator.stop() });
  await narrator.start();
  console.log('\nWhat happens from now on (try: kill -9 a sidecar, nimbus-ha switchover --url ... --token ...):');
  return new Promise<never>(() => undefined);
}

/** The `failover` part of a demo report, from the measured gap and the new primary's failover event. */
export function failoverFigures(killed: string, promoted: string, gapMs: number, ev: { details?: Record<string, unknown> } | undefined, epochBefore: number, epochAfter: number) {
  const d = ev?.details ?? {};
  return {
    killed,
    promoted,
    client_gap_ms: gapMs,
    detect_ms: d.detect_ms ?? null,
    election_ms: d.election_ms ?? null,
    promote_ms: d.promote_ms ?? null,
    vip_ms: d.vip_ms ?? null,
    epoch_before: epochBefore,
    epoch_after: epochAfter,
  };
}
