/**
 * Planned moves under a burst of requests (real pair with witness): twenty switchover requests at once
 * move the role once; the rest are refused at once (409) and reported once per reason; the new primary
 * refuses further planned moves during the hold-down.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('switchover storm and hold-down', () => {
  it('20 requests in a burst: one switchover, 19 × 409, one event per refusal reason; the new primary holds further moves down', async () => {
    cluster = new Cluster({ timings: { plannedHoldDownMs: 8000 } });
    await cluster.start();
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby' && b.peers?.[0] !== undefined, 30_000, 'a primary, b standby');
    await cluster.waitFor((a) => a?.peers?.[0]?.caught_up === true, 30_000, 'b caught up');
    const epoch = (await cluster.status('a'))!.epoch as number;
    const c = cluster;
    const answers = await Promise.all(Array.from({ length: 20 }, () => c.admin('a', '/admin/switchover', { to: 'b' })));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    const refused = answers.find((r) => r.status === 409)!.data;
    expect(refused).toMatchObject({ error: 'REQUEST_REFUSED', state: 'refused', kind: 'switchover' });
    expect(refused.message).toMatch(/already queued|in progress/);

    await cluster.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 20_000, 'b primary');
    // The new primary refuses a planned move at once during the hold-down, saying how long it lasts.
    const back = await cluster.admin('b', '/admin/switchover', { to: 'a' });
    expect(back.status).toBe(409);
    expect(back.data.message).toMatch(/hold-down: this node became primary by a planned move .* s ago; the next switchover or fail-back is allowed in \d+ s/);
    await sleep(1500);
    expect((await cluster.status('b'))!.role).toBe('primary');
    expect((await cluster.status('b'))!.epoch).toBe(epoch + 1);
    expect((await cluster.status('a'))!.epoch).toBe(epoch + 1);
    // One report per reason, not one per request (webhooks and email follow the events).
    const reports = await cluster.events('a', 'request_refused');
    expect(reports.length).toBeGreaterThanOrEqual(1);
    expect(reports.length).toBeLessThanOrEqual(2);
    expect((await cluster.events('b', 'request_refused')).length).toBe(1);
  });
});
