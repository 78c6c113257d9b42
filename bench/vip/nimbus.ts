/**
 * The same crash cycles as keepalived.ts, with nimbus-ha agents moving a linux-ip VIP.
 * The topology, the configs and the crash/repair steps are ready; `runNimbusCycles` is the one place
 * that still needs the agent's CLI (`run`, `witness`) to settle on its flags and readiness signals.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createTopology, type Topology } from '../../test/helpers/netns.js';

export interface NimbusBenchOptions {
  cycles: number;
  /** Path of the compiled CLI (node dist/src/cli/main.js). */
  cliPath: string;
  heartbeatMs?: number;
  deadAfterMs?: number;
  leaseMs?: number;
  pollMs?: number;
}

export interface NimbusBenchResult {
  timings: { heartbeatMs: number; deadAfterMs: number; leaseMs: number };
  gapsMs: Array<number | null>;
}

const AGENT_PORT = 8700;
const WITNESS_PORT = 8790;
const SECRET = 'bench-secret-0123456789abcdef';
const ADMIN_TOKEN = 'bench-admin-token-0123456789';

/** Config of one agent in the benchmark topology (nodes a, b; witness w; client c). */
export function agentConfig(
  topo: Topology,
  node: 'a' | 'b',
  vipCidr: string,
  dataDir: string,
  timings: NimbusBenchResult['timings'],
): Record<string, unknown> {
  const peer = node === 'a' ? 'b' : 'a';
  return {
    node,
    listen: { host: '0.0.0.0', port: AGENT_PORT },
    secret: SECRET,
    adminToken: ADMIN_TOKEN,
    dataDir,
    preferredPrimary: 'a',
    peers: [{ node: peer, urls: [`http://${topo.node(peer).address}:${AGENT_PORT}`] }],
    witness: { url: `http://${topo.node('w').address}:${WITNESS_PORT}` },
    timings,
    // Like keepalived in the baseline, the crashed node's address stays on its interface, so the
    // duplicate probe would (rightly) refuse: the bench takes over anyway, as VRRP does. When the
    // lead's schema gains `dad`, set `dad: false` here so no probe time is spent at all.
    vip: { kind: 'linux-ip', address: vipCidr, interface: 'eth0', arpCount: 3, arpIntervalMs: 100, allowDuplicate: true },
  };
}

/** Topology and config files for the nimbus-ha cycles; `cleanup` removes both. */
export async function prepareNimbusTopology(opts: NimbusBenchOptions): Promise<{
  topo: Topology;
  dir: string;
  vip: string;
  configs: Record<'a' | 'b' | 'w', string>;
  timings: NimbusBenchResult['timings'];
  cleanup: () => Promise<void>;
}> {
  const timings = { heartbeatMs: opts.heartbeatMs ?? 100, deadAfterMs: opts.deadAfterMs ?? 500, leaseMs: opts.leaseMs ?? 800 };
  const topo = await createTopology({ nodes: ['a', 'b', 'w', 'c'] });
  const dir = await mkdtemp(join(tmpdir(), 'nha-bench-nimbus-'));
  const vip = topo.spareAddress();
  const configs = { a: join(dir, 'a.yaml'), b: join(dir, 'b.yaml'), w: join(dir, 'witness.yaml') };
  for (const n of ['a', 'b'] as const) {
    await writeFile(configs[n], stringify(agentConfig(topo, n, `${vip}/24`, join(dir, `data-${n}`), timings)));
  }
  await writeFile(
    configs.w,
    stringify({ listen: { host: '0.0.0.0', port: WITNESS_PORT }, secret: SECRET, dataDir: join(dir, 'data-w') }),
  );
  return {
    topo,
    dir,
    vip,
    configs,
    timings,
    cleanup: async () => {
      await topo.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Whether the compiled agent exists (the bench skips the nimbus-ha side otherwise). */
export function nimbusAgentAvailable(cliPath: string): boolean {
  return existsSync(cliPath);
}

/**
 * >>> TO FINISH (lead): crash cycles with nimbus-ha agents. <<<
 * Ready: topology (a, b agents; w witness; c client), agent and witness configs, the VIP, and the
 * harness helpers (startService, startPoller, steadyHolder, gapAfter, waitFor in ./harness.js).
 * Steps, mirroring runKeepalivedCycles:
 *   1. topo.spawn('w', process.execPath, [cliPath, 'witness', '--config', configs.w]);
 *   2. per node: startService(topo, n); topo.spawn(n, process.execPath, [cliPath, 'run', '--config', configs[n]]);
 *   3. poller = startPoller(topo, 'c', vip, pollMs, bound); per cycle:
 *      master = await waitFor(..., () => steadyHolder(poller.samples, 1000)); wait until the standby's
 *      `GET http://<standby>:8700/standby` is 200 (topo.exec('c', 'curl', ...) or a fetch from a
 *      client process in c); killAt = monoMs(); kill -9 every pid in topo.pids(master);
 *      gapsMs.push(await waitFor(..., () => gapAfter(poller.samples, killAt, master)));
 *      repair: `ip addr del VIP/24 dev eth0` in master (or let the restarted agent reconcile, which is
 *      what production does), restart the service and the agent on master; it must rejoin as standby.
 */
export async function runNimbusCycles(opts: NimbusBenchOptions): Promise<NimbusBenchResult | null> {
  if (!nimbusAgentAvailable(opts.cliPath)) return null;
  const env = await prepareNimbusTopology(opts);
  try {
    throw new Error('runNimbusCycles is not finished: see the steps in bench/vip/nimbus.ts');
  } finally {
    await env.cleanup();
  }
}
