/**
 * Baseline: keepalived (VRRP) moving the same VIP between two namespaces. Each cycle kill -9s the
 * master's keepalived and service (a crash, so no priority-0 "I'm leaving" advert is sent), measures
 * the client-observed gap, then repairs the crashed node (drops the stale VIP, restarts it as backup).
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology, type Topology } from '../../test/helpers/netns.js';
import { gapAfter, monoMs, startPoller, startService, steadyHolder, waitFor } from './harness.js';

export interface KeepalivedBenchOptions {
  /** Crash cycles to measure. */
  cycles: number;
  /** VRRP advertisement interval in seconds; fractional values need VRRP version 3 (centiseconds). */
  advertInt: number;
  /** Client poll period in ms. */
  pollMs?: number;
}

export interface KeepalivedBenchResult {
  advertInt: number;
  vrrpVersion: 2 | 3;
  /** Client-observed gap of each cycle in ms (null: the VIP never answered from the backup). */
  gapsMs: Array<number | null>;
}

function keepalivedConf(node: string, vip: string, advertInt: number, version: 2 | 3): string {
  // Both BACKUP + nopreempt with equal priority: the survivor keeps the VIP when the crashed node
  // comes back, so every cycle starts from "one master, one backup" whichever node that is.
  return `global_defs {
  router_id nha_bench_${node}
  vrrp_version ${version}
  vrrp_garp_master_delay 0
  vrrp_garp_master_repeat 3
}
vrrp_instance nha_bench {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 77
  priority 100
  advert_int ${advertInt}
  virtual_ipaddress {
    ${vip}/24 dev eth0
  }
}
`;
}

interface NodeProcs {
  keepalived: ChildProcess;
  service: ChildProcess;
}

/** Runs the keepalived crash cycles in a fresh topology (nodes a, b, client c) and tears it down. */
export async function runKeepalivedCycles(opts: KeepalivedBenchOptions): Promise<KeepalivedBenchResult> {
  const version: 2 | 3 = Number.isInteger(opts.advertInt) ? 2 : 3;
  const topo = await createTopology({ nodes: ['a', 'b', 'c'] });
  const dir = await mkdtemp(join(tmpdir(), 'nha-bench-keepalived-'));
  const vip = topo.spareAddress();
  const procs = new Map<string, NodeProcs>();
  const gapsMs: Array<number | null> = [];
  // Bound the whole run: per cycle at most ~30 s plus start-up.
  const poller = startPoller(topo, 'c', vip, opts.pollMs ?? 10, (opts.cycles + 1) * 30_000 + 60_000);
  try {
    for (const n of ['a', 'b']) {
      await writeFile(join(dir, `${n}.conf`), keepalivedConf(n, vip, opts.advertInt, version));
      procs.set(n, startNode(topo, dir, n));
    }
    for (let cycle = 0; cycle < opts.cycles; cycle++) {
      const master = await waitFor('a steady VIP holder', 30_000, () => steadyHolder(poller.samples, 1_000));
      // Let the backup see a few adverts so it is in a settled BACKUP state.
      await new Promise((r) => setTimeout(r, Math.max(1_000, opts.advertInt * 4_000)));
      const killAt = monoMs();
      await crash(topo, master, procs);
      const gap = await waitFor('the backup to answer on the VIP', 20_000, () =>
        gapAfter(poller.samples, killAt, master),
      ).catch(() => null);
      gapsMs.push(gap);
      // Repair: the crashed node rejoins as backup without the VIP it left on its interface.
      await topo.exec(master, 'ip', ['addr', 'del', `${vip}/24`, 'dev', 'eth0']);
      procs.set(master, startNode(topo, dir, master));
    }
  } finally {
    await topo.cleanup();
    // NHA_BENCH_KEEP=1 keeps the configs and keepalived logs for inspection.
    if (process.env.NHA_BENCH_KEEP === '1') console.error(`keepalived bench files kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  return { advertInt: opts.advertInt, vrrpVersion: version, gapsMs };
}

function startNode(topo: Topology, dir: string, node: string): NodeProcs {
  const service = startService(topo, node);
  // A kill -9 leaves pid files behind, and keepalived refuses to start while they name a live PID.
  for (const f of ['pid', 'vrrp.pid']) rmSync(join(dir, `${node}.${f}`), { force: true });
  const log = openSync(join(dir, `${node}.log`), 'a');
  const keepalived = topo.spawn(
    node,
    'keepalived',
    ['-n', '-l', '-D', '-P', '-f', join(dir, `${node}.conf`), '-p', join(dir, `${node}.pid`), '-r', join(dir, `${node}.vrrp.pid`)],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  return { keepalived, service };
}

/**
 * kill -9 of everything the node runs (keepalived parent, its VRRP child, the service). Everything is
 * stopped (SIGSTOP) before anything is killed: keepalived's VRRP child gets SIGTERM when its parent
 * dies (parent-death signal) and would then resign with a priority-0 advert, a graceful exit that
 * lets the backup take over after the skew time (~0.6 s) instead of the master-down interval.
 */
async function crash(topo: Topology, node: string, procs: Map<string, NodeProcs>): Promise<void> {
  const pids = topo.pids(node);
  for (const signal of ['SIGSTOP', 'SIGKILL'] as const) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  }
  const p = procs.get(node);
  if (p) await Promise.all([topo.kill(p.keepalived), topo.kill(p.service)]);
}
