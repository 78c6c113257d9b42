/**
 * The same crash cycles as keepalived.ts, with nimbus-ha agents moving a linux-ip VIP (dad: false,
 * as keepalived does no duplicate probe). Each cycle kill -9s the primary's sidecar and service,
 * measures the client-observed gap, then restarts the crashed node, which removes the address its
 * predecessor left on eth0 and rejoins as standby. No fail-back: the next cycle kills the other node.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology } from '../../test/helpers/netns.js';
import { gapAfter, monoMs, startPoller, steadyHolder, waitFor } from './harness.js';
import { NetnsCluster, type HaEvent, type NimbusTimings, type PairNode } from './nimbus-cluster.js';

export interface NimbusBenchOptions {
  cycles: number;
  /** Path of the compiled CLI (node dist/src/cli/main.js). */
  cliPath: string;
  heartbeatMs?: number;
  deadAfterMs?: number;
  leaseMs?: number;
  pollMs?: number;
  /**
   * Use an arping wrapper that returns once the gratuitous ARP is out instead of after iputils'
   * one-second wait (vip.arpingPath); measures what a non-blocking first announcement would give.
   */
  fastArping?: boolean;
  logLevel?: string;
}

export interface NimbusBenchResult {
  timings: NimbusTimings;
  gapsMs: Array<number | null>;
  /** The failover event of each cycle as the new primary recorded it (detect/election/promote/vip ms). */
  failovers: Array<Record<string, unknown> | null>;
  /** Whether the restarted node's leftover VIP was gone once it was standby again, per cycle. */
  leftoverRemoved: boolean[];
}

/** Whether the compiled agent exists (the bench skips the nimbus-ha side otherwise). */
export function nimbusAgentAvailable(cliPath: string): boolean {
  return existsSync(cliPath);
}

function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * iputils arping -U -c 1 puts the packet on the wire at once, then sleeps one interval (1 s, not
 * settable below a second) before exiting. The wrapper ends it after 100 ms and reports success;
 * every other use (-V, -D probes) passes through unchanged.
 */
async function writeFastArping(dir: string): Promise<string> {
  const path = join(dir, 'arping-fast');
  await writeFile(
    path,
    `#!/bin/sh
case " $* " in *" -U "*) timeout 0.1 arping "$@"; rc=$?; [ $rc -eq 124 ] && exit 0; exit $rc;; esac
exec arping "$@"
`,
  );
  await chmod(path, 0o755);
  return path;
}

export async function runNimbusCycles(opts: NimbusBenchOptions): Promise<NimbusBenchResult | null> {
  if (!nimbusAgentAvailable(opts.cliPath)) return null;
  const topo = await createTopology({ nodes: ['a', 'b', 'w', 'c'] });
  const dir = await mkdtemp(join(tmpdir(), 'nha-bench-nimbus-'));
  const vip = topo.spareAddress();
  const cluster = new NetnsCluster({
    topo,
    cliPath: opts.cliPath,
    dir,
    vipCidr: `${vip}/24`,
    timings: definedOnly({ heartbeatMs: opts.heartbeatMs, deadAfterMs: opts.deadAfterMs, leaseMs: opts.leaseMs }),
    vip: { dad: false, arpCount: 3, arpIntervalMs: 100, ...(opts.fastArping ? { arpingPath: await writeFastArping(dir) } : {}) },
    logLevel: opts.logLevel ?? 'warn',
  });
  const gapsMs: Array<number | null> = [];
  const failovers: NimbusBenchResult['failovers'] = [];
  const leftoverRemoved: boolean[] = [];
  const poller = startPoller(topo, 'c', vip, opts.pollMs ?? 10, (opts.cycles + 1) * 60_000);
  try {
    await cluster.start();
    for (let cycle = 0; cycle < opts.cycles; cycle++) {
      const master = (await waitFor('a steady VIP holder', 30_000, () => steadyHolder(poller.samples, 1_000))) as PairNode;
      await cluster.waitSteady(master);
      const survivor: PairNode = master === 'a' ? 'b' : 'a';
      const seen = (await cluster.events(survivor, 'failover')).length;
      // As for keepalived: the standby has been settled for a while before the crash.
      await new Promise((r) => setTimeout(r, 1_000));
      const killAt = monoMs();
      await cluster.crash(master);
      const gap = await waitFor('the standby to answer on the VIP', 20_000, () => gapAfter(poller.samples, killAt, master)).catch(() => null);
      gapsMs.push(gap);
      const evs: HaEvent[] = await waitFor('the failover event', 5_000, async () => {
        const all = await cluster.events(survivor, 'failover');
        return all.length > seen ? all : null;
      }).catch(() => []);
      failovers.push(evs.length > seen ? (evs[evs.length - 1].details ?? null) : null);
      // Production repair: restart the crashed node; as a standby it drops the address it left behind.
      cluster.restart(master);
      await cluster.waitSteady(survivor);
      leftoverRemoved.push(await waitFor('the leftover VIP to be removed', 5_000, async () => ((await cluster.vipOn(master)) ? null : true)).catch(() => false));
    }
  } finally {
    await topo.cleanup();
    if (process.env.NHA_BENCH_KEEP === '1') console.error(`nimbus-ha bench files kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  return { timings: cluster.timings, gapsMs, failovers, leftoverRemoved };
}
