import { statSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthFailures } from '../../src/api/auth-failures.js';
import { EventBus } from '../../src/events/bus.js';
import { startApi } from './helpers.js';

type Api = Awaited<ReturnType<typeof startApi>>;
let api: Api | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
  vi.useRealTimers();
});

describe('authentication failures are rate-limited and their events coalesced', () => {
  it('600 unauthenticated POSTs to /admin/failback: role events stay in /events, the history grows little, one webhook', async () => {
    api = await startApi();
    api.bus.emit({ type: 'promoted', severity: 'info', message: 'promoted to primary at epoch 3' });
    api.bus.emit({ type: 'role_changed', severity: 'info', message: 'role standby -> primary' });
    await api.bus.flush();
    const sizeBefore = statSync(api.historyFile).size;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 600; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => fetch(`${api!.url}/admin/failback`, { method: 'POST', headers: { authorization: 'Bearer nope' } })));
      for (const r of batch) {
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        await r.arrayBuffer();
      }
    }
    await api.bus.flush();
    expect(api.calls).toEqual([]);
    // Refused first with 401, then, over the per-minute budget, with 429.
    expect(statuses.get(401)).toBeGreaterThan(0);
    expect(statuses.get(429)).toBeGreaterThan(500);
    const events = (await (await fetch(`${api.url}/events?limit=100`)).json()) as { events: { type: string }[] };
    expect(events.events.map((e) => e.type)).toEqual(expect.arrayContaining(['promoted', 'role_changed']));
    expect(events.events.filter((e) => e.type === 'admin_auth_failed')).toHaveLength(1);
    expect(statSync(api.historyFile).size - sizeBefore).toBeLessThan(2000);
    expect(api.notifier.sent.filter((e) => e.type === 'admin_auth_failed')).toHaveLength(1);
  });

  it('a valid token from an address over its failure budget still works', async () => {
    api = await startApi();
    for (let i = 0; i < 40; i++) await (await fetch(`${api.url}/admin/failback`, { method: 'POST', headers: { authorization: 'Bearer nope' } })).arrayBuffer();
    const ok = await fetch(`${api.url}/admin/failback`, { method: 'POST', headers: { authorization: `Bearer ${api.adminToken}` } });
    expect(ok.status).toBe(202);
  });

  it('one event per source per minute, with the count of the rest', () => {
    vi.useFakeTimers();
    const emitted: { details?: Record<string, unknown> }[] = [];
    const f = new AuthFailures((e) => emitted.push(e));
    for (let i = 0; i < 50; i++) f.record('peer', '10.0.0.9', 'bad signature', 'POST /peer/vote');
    f.record('peer', '10.0.0.8', 'bad signature', 'POST /peer/vote');
    expect(emitted.map((e) => e.details)).toEqual([expect.objectContaining({ source: '10.0.0.9', count: 1 }), expect.objectContaining({ source: '10.0.0.8', count: 1 })]);
    vi.advanceTimersByTime(60_000);
    expect(emitted[2].details).toMatchObject({ source: '10.0.0.9', count: 49 });
    for (let i = 0; i < 10; i++) f.record('peer', '10.0.0.9', 'bad signature', 'POST /peer/vote');
    expect(emitted).toHaveLength(3);
    vi.advanceTimersByTime(60_000);
    expect(emitted[3].details).toMatchObject({ source: '10.0.0.9', count: 10 });
    f.closeAll();
  });

  it('role and epoch events are never pushed out of the ring by other events', () => {
    const bus = new EventBus('a', () => 1, { ringSize: 50 });
    bus.emit({ type: 'failover', severity: 'critical', message: 'b took over' });
    bus.emit({ type: 'fenced', severity: 'critical', message: 'fenced' });
    for (let i = 0; i < 1000; i++) bus.emit({ type: 'path_degraded', severity: 'warning', message: `flap ${i}` });
    const types = bus.recent({ limit: 100 }).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['failover', 'fenced']));
    expect(bus.recent({ types: ['failover'] }).length).toBe(1);
    // Oldest first, in emission order.
    expect(types.slice(0, 2)).toEqual(['failover', 'fenced']);
  });
});
