/**
 * Cluster-wide maintenance on a real pair with a witness: set through the primary, it reaches the standby
 * in heartbeats, survives the primary's kill -9 (no promotion), and `off` on either node resumes
 * automation; a returning node takes the newer setting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';

let cluster: Cluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

async function upAndPrimary(c: Cluster): Promise<void> {
  await c.start();
  await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster-wide maintenance', () => {
  it('maintenance is cluster-wide: set on the primary, the standby does not promote when the primary dies; off on the standby resumes it', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const on = await cluster.admin('a', '/admin/maintenance', { on: true });
    expect(on.status).toBe(200);
    // The standby takes the setting from the next heartbeat.
    await cluster.waitFor((_a, b) => b?.maintenance === true, 5_000, 'b in maintenance too');
    const epoch = (await cluster.status('b'))!.epoch;
    cluster.kill('a');
    await sleep(2500);
    const b = (await cluster.status('b'))!;
    expect(b.role).toBe('maintenance');
    expect(b.epoch).toBe(epoch);
    expect((await cluster.events('b', 'maintenance_on')).at(-1)?.message).toMatch(/set on a/);
    await cluster.admin('b', '/admin/maintenance', { on: false });
    await cluster.waitFor((_a, b2) => b2?.role === 'primary', 10_000, 'b primary after maintenance off');
    // The old primary returns with its stored "on" (an older version) and takes "off" from b.
    cluster.startNode('a');
    await cluster.waitFor((a2, b2) => a2?.role === 'standby' && a2.maintenance === false && b2?.role === 'primary', 20_000, 'a back as standby, maintenance off');
  });

  it('maintenance on the standby blocks promotion; off resumes it', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const on = await cluster.admin('b', '/admin/maintenance', { on: true });
    expect(on.status).toBe(200);
    cluster.kill('a');
    await sleep(2500);
    expect((await cluster.status('b'))!.role).toBe('maintenance');
    await cluster.admin('b', '/admin/maintenance', { on: false });
    await cluster.waitFor((_a, b) => b?.role === 'primary', 10_000, 'b primary after maintenance off');
  });
});
