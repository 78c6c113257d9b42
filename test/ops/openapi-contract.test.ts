/**
 * The API answers what docs/openapi.yaml says, checked on a live pair (real processes): every route's
 * answers, good and bad requests alike, against the documented statuses and JSON schemas (Ajv).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, Cluster } from '../../fixtures/cluster.js';
import { OpenApiContract } from '../helpers/openapi-contract.js';
import { until } from '../helpers/wait.js';

describe('responses match docs/openapi.yaml', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster();
    c.contract = new OpenApiContract();
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby');
    await until('b caught up', async () => (await c.status('a'))?.peers?.[0]?.caught_up === true, 30_000);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('open, admin and peer routes, with good and bad requests, on the primary and the standby', async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const statuses: number[] = [];
    const req = async (n: 'a' | 'b', path: string, init: Parameters<Cluster['request']>[2] = {}) => {
      const r = await c.request(n, path, init);
      statuses.push(r.status);
      return r;
    };
    for (const n of ['a', 'b'] as const) {
      for (const p of ['/health', '/primary', '/standby', '/standby?max_lag_ms=5000', '/status', '/metrics', '/events', '/events?type=promoted&limit=5']) {
        await req(n, p);
        await req(n, p, { method: 'HEAD' });
      }
      await req(n, '/standby?max_lag_ms=-1');
      await req(n, '/events?limit=0');
      await req(n, '/admin/keys', { headers: admin });
      await req(n, '/admin/keys');
      await req(n, '/admin/requests/no-such-request', { headers: admin });
      await req(n, '/admin/maintenance', { method: 'POST', headers: admin, body: '{"on": "yes"}' });
      await req(n, '/admin/maintenance', { method: 'POST', headers: admin, body: '{not json' });
      await req(n, '/admin/switchover', { method: 'POST', headers: admin, body: '{"to": 5}' });
      await req(n, '/admin/promote', { method: 'POST', headers: admin, body: '{}' });
      await req(n, '/admin/switchover', { method: 'POST', body: '{}' });
      await req(n, '/peer/heartbeat', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await req(n, '/peer/db/basebackup');
      await req(n, '/no/such/route');
      await req(n, '/health', { method: 'POST' });
    }
    // A planned move and its request record.
    const r = await req('a', '/admin/switchover', { method: 'POST', headers: admin, body: '{}' });
    expect(r.status).toBe(202);
    const id = (JSON.parse(r.text) as { id: string }).id;
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'b primary after the switchover');
    await req('a', `/admin/requests/${id}`, { headers: admin });
    // Straight after the move (queued, or refused with the request record).
    await req('b', '/admin/switchover', { method: 'POST', headers: admin, body: '{}' });
    await req('b', '/admin/maintenance', { method: 'POST', headers: admin, body: '{"on": true}' });
    await req('b', '/admin/maintenance', { method: 'POST', headers: admin, body: '{"on": false}' });
    await req('b', '/status');
    await req('b', '/events?limit=1000');

    expect(c.contractProblems).toEqual([]);
    // The answers covered success and failure alike.
    for (const s of [200, 202, 400, 401, 404, 405, 503]) expect(statuses, `status ${s} seen`).toContain(s);
  });
});
