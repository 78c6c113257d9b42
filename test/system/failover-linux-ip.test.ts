/**
 * End-to-end failover with a linux-ip VIP: real `nimbus-ha run` sidecars in namespaces a and b, the
 * witness in w, clients (and HAProxy) in c, all on one bridge. Root only.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gapAfter, monoMs, SERVICE_PORT, startPoller, steadyHolder, waitFor, type Poller } from '../../bench/vip/harness.js';
import { AGENT_PORT, NetnsCluster, type PairNode } from '../../bench/vip/nimbus-cluster.js';
import { createTopology, netnsUnavailableReason, type Topology } from '../helpers/netns.js';

const cliPath = resolve('dist', 'src', 'cli', 'main.js');

function hasBinary(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skipReason =
  netnsUnavailableReason() ??
  (existsSync(cliPath) ? null : `the agent is not built (${cliPath}): run \`npx tsc -p tsconfig.json\` first`) ??
  (['curl', 'arping'].find((b) => !hasBinary(b)) ? 'curl and iputils-arping are needed (scripts/install-system-deps.sh)' : null);
if (skipReason) console.warn(`skipping linux-ip failover system tests: ${skipReason}`);
const haproxyMissing = !hasBinary('haproxy');

interface AddrSample {
  startedAt: number;
  endedAt: number;
  a: boolean;
  b: boolean;
}

/**
 * Reads eth0's addresses of a and b from the host namespace every ~10 ms (both reads of a round run
 * in parallel), so the VIP's presence is seen even while a node is cut off the bridge.
 */
function watchAddresses(topo: Topology, vip: string): { samples: AddrSample[]; stop: () => Promise<void> } {
  const samples: AddrSample[] = [];
  let running = true;
  const has = (ns: string): Promise<boolean> =>
    new Promise((done) => {
      execFile('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { timeout: 2_000 }, (_err, stdout) =>
        done(String(stdout ?? '').includes(` ${vip}/`)),
      );
    });
  const loop = (async () => {
    // Bounded: at most 60 s of polling whatever the test does.
    const until = monoMs() + 60_000;
    while (running && monoMs() < until) {
      const startedAt = monoMs();
      const [a, b] = await Promise.all([has(topo.node('a').ns), has(topo.node('b').ns)]);
      samples.push({ startedAt, endedAt: monoMs(), a, b });
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe.skipIf(skipReason !== null)('failover of a linux-ip VIP between network namespaces', () => {
  let topo: Topology;
  let dir: string;
  let vip: string;
  let cluster: NetnsCluster;
  const pollers: Poller[] = [];

  const poll = (host: string): Poller => {
    const p = startPoller(topo, 'c', host, 10, 120_000);
    pollers.push(p);
    return p;
  };
  const stopPoller = async (p: Poller): Promise<void> => {
    await topo.kill(p.child);
  };
  const holderIs = (p: Poller, node: PairNode) => () => (steadyHolder(p.samples, 500) === node ? true : null);

  /** Makes `node` the primary (switchover when the other node is), with the other one standby. */
  async function ensurePrimary(node: PairNode): Promise<void> {
    // A failed earlier case may have left a node crashed or cut off.
    for (const n of ['a', 'b'] as const) {
      await topo.reconnect(n);
      cluster.restart(n);
    }
    // A switchover is refused unless the target is a standby already (not still starting).
    await cluster.waitRoles(
      (a, b) => !!a && !!b && ((a.role === 'primary' && b.role === 'standby') || (b.role === 'primary' && a.role === 'standby')),
      30_000,
      'one primary and one standby',
    );
    // A switchover is refused while the target is not yet healthy and caught up (just restarted):
    // ask again, as an operator would, a bounded number of times.
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await cluster.primary();
      if (!current || current === node) break;
      // 409: the previous attempt's handover is still under way; wait and look again.
      expect([202, 409]).toContain(await cluster.switchover(current, node));
      try {
        await cluster.waitSteady(node, 4_000);
        break;
      } catch {
        console.info(`switchover to ${node} not done yet (attempt ${attempt + 1}); asking again`);
      }
    }
    await cluster.waitSteady(node, 30_000);
    await waitFor(`the VIP on ${node} only`, 10_000, async () => ((await cluster.vipOn(node)) && !(await cluster.vipOn(node === 'a' ? 'b' : 'a')) ? true : null));
  }

  beforeAll(async () => {
    topo = await createTopology({ nodes: ['a', 'b', 'w', 'c'] });
    dir = await mkdtemp(join(tmpdir(), 'nha-sys-linux-ip-'));
    vip = topo.spareAddress();
    // dad: false as in production behind a crash-prone sidecar: the crashed node's kernel still answers
    // ARP for the address it left behind, which a duplicate probe would (rightly) refuse to take over.
    cluster = new NetnsCluster({ topo, cliPath, dir, vipCidr: `${vip}/24`, vip: { dad: false, arpCount: 3, arpIntervalMs: 100 } });
    await cluster.start();
    await cluster.waitSteady('a', 60_000);
  });

  afterAll(async () => {
    await topo?.cleanup();
    if (dir && process.env.NHA_KEEP_LOGS !== '1') await rm(dir, { recursive: true, force: true });
  });

  it('kill -9 of the primary: the VIP answers from b; a restarted a drops the leftover address and stays standby', async () => {
    await ensurePrimary('a');
    const poller = poll(vip);
    try {
      await waitFor('answers from a on the VIP', 15_000, holderIs(poller, 'a'));
      const before = (await cluster.events('b', 'failover')).length;
      const killAt = monoMs();
      await cluster.crash('a');
      const gap = await waitFor('answers from b on the VIP', 20_000, () => gapAfter(poller.samples, killAt, 'a'));
      expect(gap).toBeLessThan(10_000);

      // Nothing was left to remove the address on a: it stays there, but b's gratuitous ARP moved c.
      expect(await cluster.vipOn('a')).toBe(true);
      expect(await cluster.vipOn('b')).toBe(true);
      expect((await topo.neighbour('c', vip))?.mac).toBe(topo.node('b').mac);
      // /status reports the VIP held once acquire() returns, which waits for the first arping to exit.
      const sb = await waitFor('b to report the VIP held', 5_000, async () => {
        const st = await cluster.status('b');
        return st?.vip?.held ? st : null;
      });
      expect(sb.role).toBe('primary');
      const evs = await waitFor('the failover event on b', 5_000, async () => {
        const all = await cluster.events('b', 'failover');
        return all.length > before ? all : null;
      });
      const d = evs[evs.length - 1].details ?? {};
      expect(d.epoch_after as number).toBeGreaterThan(d.epoch_before as number);
      for (const k of ['detect_ms', 'election_ms', 'promote_ms', 'vip_ms']) expect(typeof d[k]).toBe('number');

      // A restarted a is not primary: it removes the address at start and never takes it back.
      cluster.restart('a');
      await cluster.waitSteady('b', 30_000);
      await waitFor('a to remove the leftover VIP', 5_000, async () => ((await cluster.vipOn('a')) ? null : true));
      for (let i = 0; i < 15; i++) {
        expect(await cluster.vipOn('a')).toBe(false);
        expect(await cluster.vipOn('b')).toBe(true);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await cluster.status('a'))?.vip?.held).toBe(false);
      await waitFor('steady answers from b', 10_000, holderIs(poller, 'b'));
    } finally {
      await stopPoller(poller);
    }
  });

  it('switchover moves the VIP back to a', async () => {
    await ensurePrimary('b');
    const poller = poll(vip);
    try {
      await waitFor('answers from b on the VIP', 15_000, holderIs(poller, 'b'));
      const before = (await cluster.events('a', 'switchover')).length;
      expect(await cluster.switchover('b', 'a')).toBe(202);
      await cluster.waitSteady('a', 30_000);
      await waitFor('the VIP on a only', 10_000, async () => ((await cluster.vipOn('a')) && !(await cluster.vipOn('b')) ? true : null));
      await waitFor('steady answers from a', 10_000, holderIs(poller, 'a'));
      // The event is recorded once the VIP is up, after the role change /status already shows.
      await waitFor('the switchover event on a', 5_000, async () => ((await cluster.events('a', 'switchover')).length > before ? true : null));
      expect((await cluster.status('b'))?.vip?.held).toBe(false);
    } finally {
      await stopPoller(poller);
    }
  });

  it('an isolated primary removes the VIP (fenced) before the standby adds it', async () => {
    await ensurePrimary('a');
    const watch = watchAddresses(topo, vip);
    try {
      await waitFor('address samples', 5_000, () => (watch.samples.length >= 5 ? true : null));
      await topo.isolate('a');
      // a is reached from its own namespace (loopback to its address), b likewise.
      await cluster.waitRoles((a, b) => a?.role === 'fenced' && b?.role === 'primary', 30_000, 'a fenced and b primary');
      await waitFor('the VIP on b', 10_000, async () => ((await cluster.vipOn('b')) ? true : null));
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await watch.stop();
    }
    const s = watch.samples;
    expect(s.filter((x) => x.a && x.b)).toEqual([]);
    const lastA = s.map((x, i) => (x.a ? i : -1)).reduce((m, i) => Math.max(m, i), -1);
    const firstB = s.findIndex((x) => x.b);
    expect(lastA).toBeGreaterThanOrEqual(0);
    expect(firstB).toBeGreaterThan(lastA);
    // Neither held it for a while in between; a's removal came first.
    const handoff = s[firstB].startedAt - s[lastA].endedAt;
    expect(handoff).toBeGreaterThanOrEqual(0);
    console.info(`isolation: VIP left a, then reached b ${Math.round(handoff)} ms later (${s.length} samples)`);

    // Back on the bridge, a rejoins as standby of the newer epoch and leaves the VIP alone.
    await topo.reconnect('a');
    await cluster.waitSteady('b', 30_000);
    expect(await cluster.vipOn('a')).toBe(false);
    expect(await cluster.vipOn('b')).toBe(true);
  });

  it.skipIf(haproxyMissing)('HAProxy in the client namespace follows /primary across a failover', async () => {
    await ensurePrimary('a');
    const a = topo.node('a').address;
    const b = topo.node('b').address;
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(
      cfg,
      [
        'global',
        '    maxconn 256',
        'defaults',
        '    mode http',
        '    timeout connect 300ms',
        '    timeout client 5s',
        '    timeout server 5s',
        '    timeout check 400ms',
        '    default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions',
        'frontend vm',
        `    bind 127.0.0.1:${SERVICE_PORT}`,
        '    default_backend vm_primary',
        'backend vm_primary',
        '    option httpchk HEAD /primary',
        '    http-check expect status 200',
        `    server a ${a}:${SERVICE_PORT} check addr ${a} port ${AGENT_PORT}`,
        `    server b ${b}:${SERVICE_PORT} check addr ${b} port ${AGENT_PORT}`,
        '',
      ].join('\n'),
    );
    execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
    const haproxy = topo.spawn('c', 'haproxy', ['-db', '-f', cfg], { stdio: 'ignore' });
    const poller = poll('127.0.0.1');
    try {
      await waitFor('answers from a through HAProxy', 15_000, holderIs(poller, 'a'));
      const killAt = monoMs();
      await cluster.crash('a');
      const gap = await waitFor('answers from b through HAProxy', 20_000, () => gapAfter(poller.samples, killAt, 'a'));
      expect(gap).toBeLessThan(10_000);
      await waitFor('steady answers from b through HAProxy', 10_000, holderIs(poller, 'b'));
      console.info(`HAProxy: client gap ${Math.round(gap)} ms after kill -9 of a`);
      cluster.restart('a');
      await cluster.waitSteady('b', 30_000);
      // The restarted standby answers 503 on /primary: HAProxy keeps sending everything to b.
      await new Promise((r) => setTimeout(r, 1_000));
      const since = monoMs() - 800;
      const late = poller.samples.filter((x) => x.t >= since && x.ok);
      expect(late.length).toBeGreaterThan(0);
      expect(late.every((x) => x.node === 'b')).toBe(true);
    } finally {
      await stopPoller(poller);
      await topo.kill(haproxy);
    }
  });
});
