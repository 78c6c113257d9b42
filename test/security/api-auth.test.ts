import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/peer/auth.js';
import { heartbeat, startApi } from './helpers.js';

type Api = Awaited<ReturnType<typeof startApi>>;
let api: Api | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
});

/**
 * POST `total` bytes in 64 KB chunks (with back-pressure) and resolve with the answer and how many
 * bytes had been handed to the socket when it arrived.
 */
function streamPost(url: string, path: string, total: number, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string; sentWhenAnswered: number; ms: number }>((resolve, reject) => {
    const started = performance.now();
    const u = new URL(url + path);
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(total), ...headers } });
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    req.on('response', (res) => {
      answered = true;
      const at = sent;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentWhenAnswered: at, ms: performance.now() - started }));
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const pump = () => {
      while (!answered && sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      if (sent >= total) req.end();
    };
    pump();
  });
}

describe('authentication before the body is read', () => {
  it('an unsigned 60 MB POST to /peer/heartbeat is refused with 401 before its body is read', async () => {
    api = await startApi();
    const r = await streamPost(api.url, '/peer/heartbeat', 60 * 1024 * 1024);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'PEER_AUTH_FAILED' });
    // Answered long before the sender got its 60 MB out: nothing was buffered.
    expect(r.sentWhenAnswered).toBeLessThan(16 * 1024 * 1024);
    expect(r.ms).toBeLessThan(5000);
  });

  it('a correctly signed heartbeat larger than 16 KB is refused with 413 and not handled', async () => {
    api = await startApi();
    const body = JSON.stringify(heartbeat('a', { pad: 'x'.repeat(20 * 1024) }));
    const res = await fetch(`${api.url}/peer/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signRequest(api.secret, 'a', 'POST', '/peer/heartbeat', body) },
      body,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'BODY_TOO_LARGE' });
    expect(api.calls).toEqual([]);
  });

  it('a signed heartbeat whose body differs from the signed hash is refused', async () => {
    api = await startApi();
    const body = JSON.stringify(heartbeat('a'));
    const headers = signRequest(api.secret, 'a', 'POST', '/peer/heartbeat', body);
    const res = await fetch(`${api.url}/peer/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body.replace('"epoch":3', '"epoch":9') });
    expect(res.status).toBe(401);
    expect(api.calls).toEqual([]);
  });

  it('an admin request without the token is refused before its body is read', async () => {
    api = await startApi();
    const r = await streamPost(api.url, '/admin/maintenance', 60 * 1024 * 1024);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'ADMIN_AUTH_FAILED' });
    expect(r.sentWhenAnswered).toBeLessThan(16 * 1024 * 1024);
    expect(api.calls).toEqual([]);
  });
});

describe('the HTTP heartbeat route checks its sender', () => {
  it('a heartbeat signed by node a that speaks for node x is refused and not handled', async () => {
    api = await startApi();
    const body = JSON.stringify(heartbeat('x'));
    const res = await fetch(`${api.url}/peer/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signRequest(api.secret, 'a', 'POST', '/peer/heartbeat', body) },
      body,
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'PEER_AUTH_FAILED' });
    expect(api.calls).toEqual([]);
  });

  it('the same heartbeat signed by its own node is accepted', async () => {
    api = await startApi();
    const body = JSON.stringify(heartbeat('a'));
    const res = await fetch(`${api.url}/peer/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signRequest(api.secret, 'a', 'POST', '/peer/heartbeat', body) },
      body,
    });
    expect(res.status).toBe(200);
    expect(api.calls.map((c) => c.kind)).toEqual(['heartbeat']);
  });

  it('a request signed as the receiving node itself (reflected) is refused', async () => {
    api = await startApi();
    const body = JSON.stringify(heartbeat('b'));
    const res = await fetch(`${api.url}/peer/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signRequest(api.secret, 'b', 'POST', '/peer/heartbeat', body) },
      body,
    });
    expect(res.status).toBe(401);
    expect(api.calls).toEqual([]);
  });
});
