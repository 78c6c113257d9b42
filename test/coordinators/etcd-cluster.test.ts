/**
 * nimbus-ha pairs with etcd as the third vote (real `nimbus-ha run` processes, real etcd members on
 * loopback; skipped with a message without Debian's etcd-server):
 *
 * - three etcd members: killing one changes nothing; killing two (no quorum) leaves the primary primary
 *   while its peer renews the lease, and a standby whose primary dies then is not promoted without the
 *   coordinator; once the members are back the cluster heals. An independent /primary poller checks
 *   there is never a second primary.
 * - two pairs with different prefixes on one etcd: a failover in one leaves the other as it was.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { EtcdCluster, etcdMissing } from '../../fixtures/etcd.js';
import { EtcdCoordinator } from '../../adapters/coordinator/etcd.js';
import { doublePrimaryPoller } from '../helpers/double-primary.js';
import { sleep, until } from '../helpers/wait.js';

const missing = etcdMissing();
if (missing) console.warn(`etcd cluster tests SKIPPED: ${missing}`);

/** Sample a node's status every 100 ms for `ms`; every sample must satisfy `ok` (a null status fails). */
async function holdsFor(c: Cluster, node: 'a' | 'b', ms: number, ok: (s: Record<string, any>) => boolean, what: string): Promise<number> {
  const end = Date.now() + ms;
  let samples = 0;
  while (Date.now() < end) {
    const s = await c.status(node);
    expect(s, `${node} answered (${what})`).not.toBeNull();
    expect(ok(s!), `${what}: ${node} is ${s!.role} at epoch ${s!.epoch} (${s!.reason})`).toBe(true);
    samples++;
    await sleep(100);
  }
  return samples;
}

describe.skipIf(missing !== null)('etcd as the third vote', () => {
  const etcds: EtcdCluster[] = [];
  const clusters: Cluster[] = [];
  afterEach(async () => {
    for (const c of clusters.splice(0)) await c.stop();
    for (const e of etcds.splice(0)) await e.stop();
  });
  afterAll(async () => {
    for (const c of clusters.splice(0)) await c.stop();
    for (const e of etcds.splice(0)) await e.stop();
  });

  it('three members: one down changes nothing; two down, the primary stays only while its peer renews and nobody is promoted without etcd; heals', async () => {
    const etcd = new EtcdCluster(3);
    etcds.push(etcd);
    await etcd.start();
    const c = new Cluster({ witness: false, coordinator: { kind: 'etcd', endpoints: etcd.endpoints, prefix: '/nimbus-ha/three/' } });
    clusters.push(c);
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const a0 = (await c.status('a'))!;
    expect(a0.witness).toMatchObject({ kind: 'etcd' });
    await until('a renews its lease in etcd', async () => (await c.status('a'))?.witness?.health === 'ok', 10_000, 100);
    const epoch = a0.epoch as number;
    const poll = doublePrimaryPoller(c);

    // One member down: the lease goes on being renewed by the other two.
    await etcd.kill(0);
    await holdsFor(c, 'a', 3_000, (s) => s.role === 'primary' && s.epoch === epoch, 'one etcd member down');
    expect((await c.status('a'))!.witness.health).toBe('ok');
    expect((await c.status('b'))!.role).toBe('standby');

    // Two down: no quorum. The primary keeps its role on its peer's renewals alone.
    await etcd.kill(1);
    await holdsFor(c, 'a', 4_000, (s) => s.role === 'primary' && s.epoch === epoch, 'two etcd members down, peer renewing');
    await until('a reports etcd unreachable', async () => (await c.status('a'))?.witness?.health === 'unreachable', 5_000, 100);
    expect((await c.status('b'))!.role).toBe('standby');

    // The primary dies too: its standby must not promote without the coordinator.
    c.kill('a');
    const samples = await holdsFor(c, 'b', 5_000, (s) => s.role !== 'primary' && s.epoch === epoch, 'primary dead, etcd without quorum');
    expect(samples).toBeGreaterThan(20);

    // etcd heals: b takes over (above a's epoch); a returns as its standby.
    const healedAt = Date.now();
    etcd.startMember(0);
    etcd.startMember(1);
    await etcd.waitHealthy(0, 20_000);
    await until('b primary after etcd healed', async () => (await c.status('b'))?.role === 'primary', 30_000, 100);
    const tookMs = Date.now() - healedAt;
    expect((await c.status('b'))!.epoch).toBeGreaterThan(epoch);
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'a back as standby');
    const polled = await poll.done();
    expect(polled.samples).toBeGreaterThan(50);
    expect(polled.both).toBe(0);
    console.log(`etcd 3 members: b primary ${tookMs} ms after quorum returned; ${polled.samples} /primary samples, 0 with two primaries`);
  });

  it('two pairs with different prefixes on one etcd: a failover in one leaves the other untouched', async () => {
    const etcd = new EtcdCluster(1);
    etcds.push(etcd);
    await etcd.start();
    const one = new Cluster({ witness: false, coordinator: { kind: 'etcd', endpoints: etcd.endpoints, prefix: '/nimbus-ha/one/' } });
    const two = new Cluster({ witness: false, coordinator: { kind: 'etcd', endpoints: etcd.endpoints, prefix: '/nimbus-ha/two/' } });
    clusters.push(one, two);
    await Promise.all([one.start(), two.start()]);
    await one.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'pair one: a primary, b standby');
    await two.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'pair two: a primary, b standby');
    const epochTwo = (await two.status('a'))!.epoch as number;
    const epochOne = (await one.status('a'))!.epoch as number;
    const polls = [doublePrimaryPoller(one), doublePrimaryPoller(two)];

    // Each pair's keys are its own: same node names, separate epochs and holders.
    const readOne = await EtcdCoordinator.create({ endpoints: etcd.endpoints, prefix: '/nimbus-ha/one/' });
    const readTwo = await EtcdCoordinator.create({ endpoints: etcd.endpoints, prefix: '/nimbus-ha/two/' });
    try {
      expect(await readOne.read(2000)).toMatchObject({ epoch: epochOne, holder: 'a' });
      expect(await readTwo.read(2000)).toMatchObject({ epoch: epochTwo, holder: 'a' });

      one.kill('a');
      const killedAt = Date.now();
      await until('pair one: b primary', async () => (await one.status('b'))?.role === 'primary', 15_000, 50);
      const failoverMs = Date.now() - killedAt;
      await holdsFor(two, 'a', 2_000, (s) => s.role === 'primary' && s.epoch === epochTwo, 'the other pair');
      expect((await two.status('b'))!.role).toBe('standby');
      expect(await two.events('a', 'failover')).toEqual([]);
      expect(await two.events('b', 'failover')).toEqual([]);
      expect(await readOne.read(2000)).toMatchObject({ holder: 'b' });
      expect((await readOne.read(2000)).epoch).toBeGreaterThan(epochOne);
      expect(await readTwo.read(2000)).toMatchObject({ epoch: epochTwo, holder: 'a' });
      for (const p of polls) expect((await p.done()).both).toBe(0);
      console.log(`etcd two prefixes: pair one failed over in ${failoverMs} ms; pair two stayed at epoch ${epochTwo}`);
    } finally {
      readOne.close();
      readTwo.close();
    }
  });
});
