/**
 * Cluster-wide maintenance on a real pair with a witness: set through the primary, it reaches the standby
 * in heartbeats, survives the primary's kill -9 (no promotion), and `off` on either node resumes
 * automation; a returning node takes the newer setting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { sleep, upAndPrimary } from '../helpers/wait.js';

let cluster: Cluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

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

  it('per node (--node): the primary paused alone does not pause its standby, which takes over when it dies', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const wrong = await cluster.admin('a', '/admin/maintenance', { on: true, node: 'b' });
    expect(wrong.status).toBe(400);
    expect(wrong.data.message).toMatch(/is not this node \(a\)/);
    expect((await cluster.status('a'))!.maintenance).toBe(false);
    const on = await cluster.admin('a', '/admin/maintenance', { on: true, node: 'a' });
    expect(on.status).toBe(200);
    const a = (await cluster.status('a'))!;
    expect(a).toMatchObject({ role: 'primary', maintenance: true, maintenance_scope: 'node' });
    // The peer is not told: after many heartbeats it still runs automation.
    await sleep(1000);
    expect((await cluster.status('b'))!).toMatchObject({ role: 'standby', maintenance: false, maintenance_scope: null });
    expect((await cluster.events('a', 'maintenance_on')).at(-1)?.details).toMatchObject({ scope: 'node', node: 'a' });
    cluster.kill('a');
    await cluster.waitFor((_a, b) => b?.role === 'primary', 10_000, 'b primary: it was not paused');
  });

  it('per node (--node): a paused standby does not promote, stays paused across its restart, and promotes once its pause is lifted', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    expect((await cluster.admin('b', '/admin/maintenance', { on: true, node: 'b' })).status).toBe(200);
    await sleep(500);
    expect((await cluster.status('a'))!).toMatchObject({ role: 'primary', maintenance: false });
    const epoch = (await cluster.status('b'))!.epoch;
    cluster.kill('a');
    await sleep(2500);
    expect((await cluster.status('b'))!).toMatchObject({ role: 'maintenance', epoch, maintenance_scope: 'node' });
    await cluster.restartNode('b');
    await cluster.waitFor((_a, b) => b?.role === 'maintenance', 15_000, 'b back, still paused');
    expect((await cluster.status('b'))!.epoch).toBe(epoch);
    expect((await cluster.admin('b', '/admin/maintenance', { on: false, node: 'b' })).status).toBe(200);
    await cluster.waitFor((_a, b) => b?.role === 'primary' && b.maintenance === false, 10_000, 'b primary after its pause was lifted');
  });

  it('a primary in maintenance keeps its role and restarts nothing: its VM service killed stays down until maintenance is off', async () => {
    cluster = new Cluster({ db: { sync: 'sync' }, nimbus: true });
    await cluster.start();
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby');
    const serving = () => fetch(`http://127.0.0.1:${cluster!.nodes.a.servicePort}/`).then(() => true, () => false);
    for (let i = 0; i < 100 && !(await serving()); i++) await sleep(200);
    expect(await serving()).toBe(true);
    expect((await cluster.admin('a', '/admin/maintenance', { on: true })).status).toBe(200);
    await sleep(300);
    cluster.killVmService('a');
    // Several probe periods (fast profile: 2 s): failures are reported, nothing is restarted, no handover.
    await sleep(7000);
    expect(await serving()).toBe(false);
    expect(await cluster.events('a', 'service_restarted')).toEqual([]);
    expect((await cluster.status('a'))!).toMatchObject({ role: 'primary', maintenance: true });
    expect((await cluster.status('b'))!.role).toBe('maintenance');
    expect((await cluster.admin('a', '/admin/maintenance', { on: false })).status).toBe(200);
    for (let i = 0; i < 100 && !(await serving()); i++) await sleep(200);
    expect(await serving()).toBe(true);
    for (let i = 0; i < 50 && !(await cluster.events('a', 'service_restarted')).length; i++) await sleep(200);
    const trail = (await cluster.events('a')).map((e) => `${e.type} ${e.message}`);
    expect(trail.some((t) => t.startsWith('service_restarted')), trail.join('\n')).toBe(true);
  });
});
