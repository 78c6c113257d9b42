/**
 * The routes behind the dashboard, on a real sidecar API (Express on loopback, a real event bus with
 * its history file): the page and its assets with a strict CSP, the Server-Sent Events stream (backlog,
 * live events, resume with Last-Event-ID, type filter, the bound on open streams), GET /availability,
 * and no CORS anywhere.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startApi } from '../security/helpers.js';

type Api = Awaited<ReturnType<typeof startApi>>;
let api: Api | null = null;
const open: http.ClientRequest[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) r.destroy();
  await api?.close();
  api = null;
});

interface Sse {
  status: number;
  headers: http.IncomingHttpHeaders;
  messages: { id: string | null; data: string }[];
  /** Resolves once `n` messages arrived (rejects after 5 s). */
  until(n: number): Promise<void>;
  close(): void;
}

/** Opens an event stream and parses its messages as they arrive. */
function sse(url: string, headers: Record<string, string> = {}): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const messages: Sse['messages'] = [];
      const waiters: { n: number; done: () => void }[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const lines = block.split('\n');
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
          if (!data.length) continue; // retry:, comments
          const id = lines.find((l) => l.startsWith('id: '))?.slice(4) ?? null;
          messages.push({ id, data: data.join('\n') });
        }
        for (const w of waiters.filter((x) => messages.length >= x.n)) w.done();
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        messages,
        until: (n) =>
          new Promise((ok, fail) => {
            if (messages.length >= n) return ok();
            const t = setTimeout(() => fail(new Error(`only ${messages.length} of ${n} messages in 5 s`)), 5000);
            waiters.push({ n, done: () => (clearTimeout(t), ok()) });
          }),
        close: () => req.destroy(),
      });
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    open.push(req);
  });
}

const emit = (a: Api, type: string, message: string, details: Record<string, unknown> = {}) => a.bus.emit({ type, severity: 'info', message, details });

describe('dashboard routes', () => {
  it('serves the page and its assets with a strict content security policy; nothing else under /ui', async () => {
    api = await startApi();
    const page = await fetch(`${api.url}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self';");
    expect(csp).toContain("frame-ancestors 'none'");
    const html = await page.text();
    for (const asset of ['/ui/app.js', '/ui/style.css', '/ui/uPlot.iife.min.js', '/ui/uPlot.min.css']) {
      expect(html).toContain(asset);
      const r = await fetch(`${api.url}${asset}`);
      expect(r.status, asset).toBe(200);
      expect(r.headers.get('content-type')).toMatch(asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(500);
    }
    // No inline script: the CSP would block it, and nothing in the page relies on one.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const missing = await fetch(`${api.url}/ui/../status.json`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${api.url}/ui/package.json`)).status).toBe(404);
  });

  it('streams events: backlog with ids, live events, resume from Last-Event-ID, a type filter', async () => {
    const a = (api = await startApi());
    for (let i = 0; i < 5; i++) emit(a, 'probe_ok', `before ${i}`);
    const s = await sse(`${a.url}/events/stream?backlog=2`);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toMatch(/^text\/event-stream/);
    await s.until(2);
    expect(s.messages.map((m) => JSON.parse(m.data).message)).toEqual(['before 3', 'before 4']);
    emit(a, 'failover', 'live one', { detect_ms: 120 });
    await s.until(3);
    const live = JSON.parse(s.messages[2].data);
    expect(live).toMatchObject({ type: 'failover', node: 'b', message: 'live one', details: { detect_ms: 120 } });
    // id: <boot>.<seq>, the boot the same for this process, the sequence increasing.
    const ids = s.messages.map((m) => /^([0-9a-f]{8})\.(-?\d+)$/.exec(m.id ?? '')!);
    expect(ids.every((m) => m !== null && m[1] === ids[0][1])).toBe(true);
    const seqs = ids.map((m) => Number(m[2]));
    expect(seqs[1]).toBeGreaterThan(seqs[0]);
    expect(seqs[2]).toBeGreaterThan(seqs[1]);
    s.close();

    // A client that lost the connection after "before 3" gets exactly what followed.
    emit(a, 'probe_ok', 'while away');
    const again = await sse(`${a.url}/events/stream`, { 'last-event-id': s.messages[0].id! });
    await again.until(3);
    expect(again.messages.map((m) => JSON.parse(m.data).message)).toEqual(['before 4', 'live one', 'while away']);
    // An id of another boot (the sidecar restarted and numbers anew) or garbage: the backlog, as new.
    for (const id of [`ffffffff.${seqs[0]}`, String(seqs[0]), 'nonsense']) {
      const other = await sse(`${a.url}/events/stream?backlog=2`, { 'last-event-id': id });
      await other.until(2);
      expect(other.messages.map((m) => JSON.parse(m.data).message), id).toEqual(['live one', 'while away']);
      other.close();
    }

    const only = await sse(`${a.url}/events/stream?type=failover&backlog=10`);
    await only.until(1);
    emit(a, 'probe_ok', 'filtered out');
    emit(a, 'switchover', 'not asked for');
    emit(a, 'failover', 'second');
    await only.until(2);
    expect(only.messages.map((m) => JSON.parse(m.data).message)).toEqual(['live one', 'second']);

    for (const q of ['9999', '0x10', '', '-1', '1.5']) {
      const bad = await fetch(`${a.url}/events/stream?backlog=${q}`);
      expect(bad.status, q).toBe(400);
      expect((await bad.json()).error).toBe('USAGE');
    }
  });

  it('HEAD answers the headers without opening a stream (no slot taken)', async () => {
    const a = (api = await startApi());
    for (let i = 0; i < 40; i++) {
      const h = await fetch(`${a.url}/events/stream`, { method: 'HEAD' });
      expect(h.status).toBe(200);
      expect(h.headers.get('content-type')).toMatch(/^text\/event-stream/);
    }
    const s = await sse(`${a.url}/events/stream?backlog=0`);
    expect(s.status).toBe(200);
  });

  it('a client that stops reading is disconnected once 1 MiB waits for it: its socket and buffer are freed', async () => {
    const a = (api = await startApi());
    const connections = () => new Promise<number>((ok, fail) => a.server.getConnections((err, n) => (err ? fail(err) : ok(n))));
    let closed = false;
    await new Promise<void>((ok, fail) => {
      const req = http.get(`${a.url}/events/stream?backlog=0`, (res) => {
        res.pause(); // reads nothing from now on
        res.socket.on('close', () => (closed = true));
        ok();
      });
      req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : fail(err)));
      open.push(req);
    });
    expect(await connections()).toBe(1);
    // 20 MiB of events: more than the socket buffers on both sides and the 1 MiB allowance.
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 200 && !closed; i++) {
      emit(a, 'probe_ok', `${i} ${big}`);
      await new Promise((r) => setImmediate(r));
    }
    const deadline = Date.now() + 5000;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await connections()).toBe(0);
    // The slot is free again.
    const s = await sse(`${a.url}/events/stream?backlog=0`);
    expect(s.status).toBe(200);
  });

  it('bounds the open streams (503, retryable) and frees a slot when a client goes', async () => {
    const a = (api = await startApi());
    const streams: Sse[] = [];
    for (let i = 0; i < 32; i++) streams.push(await sse(`${a.url}/events/stream?backlog=0`));
    expect(streams.every((s) => s.status === 200)).toBe(true);
    const over = await fetch(`${a.url}/events/stream`);
    expect(over.status).toBe(503);
    expect(over.headers.get('retry-after')).toBe('10');
    expect((await over.json()).error).toBe('TOO_MANY_STREAMS');
    streams[0].close();
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline) {
      const s = await sse(`${a.url}/events/stream?backlog=0`);
      status = s.status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
  });

  it('GET /availability: the model for a single node and a pair, and what the history shows', async () => {
    const a = (api = await startApi());
    emit(a, 'role_changed', 'start');
    a.bus.emit({ type: 'failover', severity: 'critical', message: 'took over', details: { downtimeMs: 400 } });
    const r = await fetch(`${a.url}/availability`);
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(body.model.pair.availability).toBeGreaterThan(body.model.single.availability);
    expect(body.params).toMatchObject({ lambdaV: expect.any(Number), mu: expect.any(Number) });
    expect(body.observed.failures).toBe(1);
    expect(body.observed.incidents[0]).toMatchObject({ kind: 'failover' });
  });

  it('no CORS: another origin cannot read the open routes from a browser; /admin is 401 without the token and changes nothing', async () => {
    const a = (api = await startApi());
    const other = await fetch(`${a.url}/status`, { headers: { origin: 'http://127.0.0.1:9' } });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const stream = await sse(`${a.url}/events/stream?backlog=0`, { origin: 'http://127.0.0.1:9' });
    expect(stream.headers['access-control-allow-origin']).toBeUndefined();
    const admin = await fetch(`${a.url}/admin/switchover`, { method: 'POST', headers: { origin: 'http://127.0.0.1:9', 'content-type': 'application/json' }, body: '{}' });
    expect(admin.status).toBe(401);
    expect(admin.headers.get('access-control-allow-origin')).toBeNull();
    expect(a.calls.filter((c) => c.kind === 'request')).toEqual([]);
  });
});
