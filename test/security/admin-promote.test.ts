import { afterEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers.js';

type Api = Awaited<ReturnType<typeof startApi>>;
let api: Api | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
});

describe('POST /admin/promote (forced promotion that accepts data loss)', () => {
  it('needs the admin token and an explicit acceptDataLoss: true; only then is a request queued', async () => {
    api = await startApi();
    const post = (body: unknown, token: string | null) =>
      fetch(`${api!.url}/admin/promote`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    expect((await post({ acceptDataLoss: true }, null)).status).toBe(401);
    expect((await post({ acceptDataLoss: true }, 'wrong')).status).toBe(401);
    const missing = await post({}, api.adminToken);
    expect(missing.status).toBe(400);
    expect((await missing.json()).message).toMatch(/acceptDataLoss/);
    expect((await post({ acceptDataLoss: 'yes' }, api.adminToken)).status).toBe(400);
    expect(api.calls.filter((c) => c.kind === 'request')).toHaveLength(0);
    const ok = await post({ acceptDataLoss: true }, api.adminToken);
    expect(ok.status).toBe(202);
    expect(api.calls.filter((c) => c.kind === 'request').map((c) => c.args[0])).toEqual(['promote']);
  });
});
