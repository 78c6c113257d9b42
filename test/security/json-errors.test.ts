import { afterEach, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/peer/auth.js';
import { apiError, ERROR_INFO } from '../../src/errors.js';
import { startApi } from './helpers.js';

type Api = Awaited<ReturnType<typeof startApi>>;
let api: Api | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
});

/** Every error is the documented JSON Error: a stable code, a message, no HTML, no stack trace or path. */
async function expectJsonError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const text = await res.text();
  expect(text).not.toMatch(/<html|<pre|at .*\(|node_modules|\/work\//i);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toEqual({ error: code, message: expect.any(String) });
}

describe('JSON errors everywhere', () => {
  it('malformed JSON to /peer/* unsigned: 401 JSON; signed: 400 BAD_JSON', async () => {
    api = await startApi();
    const bad = '{"node": "a",';
    await expectJsonError(await fetch(`${api.url}/peer/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bad }), 401, 'PEER_AUTH_FAILED');
    const headers = { 'content-type': 'application/json', ...signRequest(api.secret, 'a', 'POST', '/peer/heartbeat', bad) };
    await expectJsonError(await fetch(`${api.url}/peer/heartbeat`, { method: 'POST', headers, body: bad }), 400, 'BAD_JSON');
  });

  it('malformed and oversized JSON to /admin/* with the token: 400 BAD_JSON and 413 BODY_TOO_LARGE', async () => {
    api = await startApi();
    const auth = { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json' };
    await expectJsonError(await fetch(`${api.url}/admin/maintenance`, { method: 'POST', headers: auth, body: '{"on": tru' }), 400, 'BAD_JSON');
    await expectJsonError(await fetch(`${api.url}/admin/maintenance`, { method: 'POST', headers: auth, body: JSON.stringify({ on: true, pad: 'x'.repeat(64 * 1024) }) }), 413, 'BODY_TOO_LARGE');
    expect(api.calls).toEqual([]);
  });

  it('unknown route: 404 NOT_FOUND; known route, wrong method: 405 with Allow', async () => {
    api = await startApi();
    await expectJsonError(await fetch(`${api.url}/nothing-here`), 404, 'NOT_FOUND');
    const res = await fetch(`${api.url}/health`, { method: 'POST' });
    expect(res.headers.get('allow')).toMatch(/GET/);
    await expectJsonError(res, 405, 'METHOD_NOT_ALLOWED');
    const del = await fetch(`${api.url}/admin/failback`, { method: 'DELETE', headers: { authorization: `Bearer ${api.adminToken}` } });
    expect(del.headers.get('allow')).toBe('POST');
    await expectJsonError(del, 405, 'METHOD_NOT_ALLOWED');
    // An unknown admin request is NOT_FOUND too (it was labelled USAGE).
    await expectJsonError(await fetch(`${api.url}/admin/requests/no-such-id`, { headers: { authorization: `Bearer ${api.adminToken}` } }), 404, 'NOT_FOUND');
  });

  it('every error code has one HTTP status (4xx or 5xx) and a retryable flag; the API answers with it', () => {
    for (const [code, info] of Object.entries(ERROR_INFO)) {
      expect(info.httpStatus, code).toBeGreaterThanOrEqual(400);
      expect(info.httpStatus, code).toBeLessThan(600);
      expect(typeof info.retryable, code).toBe('boolean');
    }
    expect(apiError('NOT_FOUND', 'x')).toEqual({ status: 404, body: { error: 'NOT_FOUND', message: 'x' } });
    expect(ERROR_INFO.AUTH_RATE_LIMITED).toEqual({ httpStatus: 429, retryable: true });
    expect(ERROR_INFO.USAGE.retryable).toBe(false);
  });

  it('invalid parameters are a JSON 400 USAGE and change nothing: switchover to a non-string, events limit out of range, negative max_lag_ms (GET and HEAD)', async () => {
    api = await startApi();
    const auth = { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json' };
    for (const body of [{ to: 5 }, { to: '' }, { to: ['b'] }]) {
      await expectJsonError(await fetch(`${api.url}/admin/switchover`, { method: 'POST', headers: auth, body: JSON.stringify(body) }), 400, 'USAGE');
    }
    expect(api.calls).toEqual([]);
    expect((await fetch(`${api.url}/admin/switchover`, { method: 'POST', headers: auth, body: JSON.stringify({ to: 'b' }) })).status).toBe(202);
    for (const q of ['0', '1001', '2.5', 'x']) await expectJsonError(await fetch(`${api.url}/events?limit=${q}`), 400, 'USAGE');
    expect((await fetch(`${api.url}/events?limit=1000`)).status).toBe(200);
    await expectJsonError(await fetch(`${api.url}/standby?max_lag_ms=-1`), 400, 'USAGE');
    expect((await fetch(`${api.url}/standby?max_lag_ms=-1`, { method: 'HEAD' })).status).toBe(400);
  });

  it('a malformed URL escape is a JSON 400, not an HTML page', async () => {
    api = await startApi();
    await expectJsonError(await fetch(`${api.url}/admin/requests/%E0%A4%A`, { headers: { authorization: `Bearer ${api.adminToken}` } }), 400, 'BAD_REQUEST');
  });
});
