import dgram from 'node:dgram';
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpClient, UdpServer, udpUrlOf, parseUdpUrl } from '../../src/peer/udp.js';
import { PeerClient } from '../../src/peer/client.js';
import { HaError } from '../../src/errors.js';

const SECRET = 'a-shared-secret-of-enough-length';
const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function server(routes: ConstructorParameters<typeof UdpServer>[2], self = 'b', secret = SECRET) {
  const rejects: string[] = [];
  const calls: { body: unknown; from: string }[] = [];
  const wrapped = Object.fromEntries(
    Object.entries(routes).map(([p, h]) => [p, (body: unknown, from: string) => (calls.push({ body, from }), h(body, from))]),
  );
  const s = new UdpServer(self, secret, wrapped, (reason) => rejects.push(reason));
  const port = await s.listen('127.0.0.1', 0);
  cleanups.push(() => s.close());
  return { url: `udp://127.0.0.1:${port}`, port, rejects, calls };
}

function client(node = 'a', secret = SECRET) {
  const c = new UdpClient(node, secret);
  cleanups.push(() => c.close());
  return c;
}

/** Sits between client and server and keeps a copy of every datagram the client sends. */
async function sniffer(targetPort: number) {
  const seen: Buffer[] = [];
  const sock = dgram.createSocket('udp4');
  const up = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  let back: dgram.RemoteInfo | null = null;
  sock.on('message', (m, rinfo) => {
    seen.push(m);
    back = rinfo;
    up.send(m, targetPort, '127.0.0.1');
  });
  up.on('message', (m) => {
    if (back) sock.send(m, back.port, back.address);
  });
  cleanups.push(() => {
    sock.close();
    up.close();
  });
  return { url: `udp://127.0.0.1:${sock.address().port}`, seen, resend: (m: Buffer) => up.send(m, targetPort, '127.0.0.1') };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('UDP peer transport', () => {
  it('carries a signed request and its reply', async () => {
    const s = await server({ '/peer/heartbeat': (body) => ({ status: 200, body: { echo: body, ok: true } }) });
    const reply = await client().post<{ echo: unknown; ok: boolean }>(s.url, '/peer/heartbeat', { node: 'a', epoch: 3 }, 1000);
    expect(reply).toEqual({ echo: { node: 'a', epoch: 3 }, ok: true });
    expect(s.calls).toEqual([{ body: { node: 'a', epoch: 3 }, from: 'a' }]);
    expect(s.rejects).toEqual([]);
  });

  it('PeerClient sends udp:// targets over datagrams', async () => {
    const s = await server({ '/witness/read': () => ({ status: 200, body: { epoch: 7 } }) });
    const c = new PeerClient('a', SECRET);
    cleanups.push(() => c.close());
    await expect(c.post(s.url, '/witness/read', {}, 1000)).resolves.toEqual({ epoch: 7 });
  });

  it('a wrong secret is refused: the handler never runs, the sender learns why', async () => {
    const s = await server({ '/peer/heartbeat': () => ({ status: 200, body: {} }) });
    const err = await client('a', 'another-secret-of-enough-length').post(s.url, '/peer/heartbeat', { x: 1 }, 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('PEER_AUTH_FAILED');
    expect((err as HaError).message).toMatch(/same secret/);
    expect(s.calls).toEqual([]);
    expect(s.rejects[0]).toMatch(/bad signature/);
  });

  it('a captured request replayed is refused and not handled twice', async () => {
    const s = await server({ '/peer/takeover': () => ({ status: 200, body: { ok: true } }) });
    const sn = await sniffer(s.port);
    await client().post(sn.url, '/peer/takeover', { epoch: 9 }, 1000);
    expect(sn.seen).toHaveLength(1);
    sn.resend(sn.seen[0]);
    await wait(100);
    expect(s.calls).toHaveLength(1);
    expect(s.rejects).toEqual(['replayed request']);
  });

  it('refuses stale timestamps, reflected requests and garbage; answers unknown routes with 404', async () => {
    const s = await server({ '/peer/heartbeat': () => ({ status: 200, body: {} }) }, 'b');
    const raw = dgram.createSocket('udp4');
    cleanups.push(() => raw.close());
    const signed = (frame: object) => {
      const json = JSON.stringify(frame);
      const sig = createHmac('sha256', SECRET).update('nha-udp-1\n').update(json).digest('hex');
      return Buffer.from(`NHA1 ${sig} ${json}`);
    };
    raw.send(signed({ k: 'q', id: 'aaaaaaaaaaaaaaaaaaaaaaaa', n: 'a', ts: Date.now() - 60_000, p: '/peer/heartbeat', b: {} }), s.port, '127.0.0.1');
    raw.send(signed({ k: 'q', id: 'bbbbbbbbbbbbbbbbbbbbbbbb', n: 'b', ts: Date.now(), p: '/peer/heartbeat', b: {} }), s.port, '127.0.0.1');
    raw.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'), s.port, '127.0.0.1');
    await wait(150);
    expect(s.calls).toEqual([]);
    expect(s.rejects).toEqual(expect.arrayContaining([expect.stringMatching(/timestamp/), expect.stringMatching(/reflected/), expect.stringMatching(/not a nimbus-ha datagram/)]));
    const err = await client().post(s.url, '/peer/nothing', {}, 1000).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/status 404/);
    // Route names are looked up as own keys only: no object-prototype members.
    const proto = await client().post(s.url, 'constructor', {}, 1000).catch((e: unknown) => e);
    expect((proto as Error).message).toMatch(/status 404/);
  });

  it('times out when nobody listens, and refuses messages too large for a datagram', async () => {
    const s = await server({});
    s.calls.length = 0;
    const port = s.port;
    cleanups.pop()!(); // close the server: the port is now silent
    const started = Date.now();
    const err = await client().post(`udp://127.0.0.1:${port}`, '/peer/heartbeat', {}, 200).catch((e: unknown) => e);
    expect((err as HaError).code).toBe('PEER_UNREACHABLE');
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(client().post(`udp://127.0.0.1:${port}`, '/peer/heartbeat', { blob: 'x'.repeat(70_000) }, 200)).rejects.toThrow(/does not fit a UDP datagram/);
  });

  it('a request given up through its signal fails at once and leaves no timer or waiter behind', async () => {
    // A bound socket that never answers (a closed port would answer with ICMP "port unreachable").
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => silent.close());
    const port = silent.address().port;
    const c = client();
    const pending = (c as unknown as { pending: Map<string, { timer: NodeJS.Timeout }> }).pending;
    const ctrl = new AbortController();
    const started = Date.now();
    const p = c.post(`udp://127.0.0.1:${port}`, '/peer/heartbeat', {}, 60_000, ctrl.signal).catch((e: unknown) => e);
    await wait(20);
    expect(pending.size).toBe(1);
    const timer = [...pending.values()][0].timer;
    ctrl.abort(new HaError('PEER_UNREACHABLE', 'given up by the caller'));
    const err = (await p) as HaError;
    expect(err.code).toBe('PEER_UNREACHABLE');
    expect(err.message).toBe('given up by the caller');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(pending.size).toBe(0);
    expect((timer as unknown as { _destroyed: boolean })._destroyed).toBe(true); // cleared (Node marks a cleared Timeout destroyed), not left to fire
    // Already aborted: refused before anything is sent.
    await expect(c.post(`udp://127.0.0.1:${port}`, '/peer/heartbeat', {}, 60_000, ctrl.signal)).rejects.toThrow(/given up by the caller/);
  });

  it('an answered request with a signal resolves and detaches from the signal', async () => {
    const s = await server({ '/peer/echo': (body) => ({ status: 200, body }) });
    const ctrl = new AbortController();
    await expect(client().post(s.url, '/peer/echo', { n: 1 }, 2000, ctrl.signal)).resolves.toEqual({ n: 1 });
    ctrl.abort(); // too late to matter: no unhandled rejection, nothing thrown
    await wait(10);
  });

  it('maps HTTP base URLs to the same host and port over UDP', () => {
    expect(udpUrlOf('http://10.0.0.2:8780')).toBe('udp://10.0.0.2:8780');
    expect(udpUrlOf('https://head-b.example:8443/')).toBe('udp://head-b.example:8443');
    expect(udpUrlOf('http://[fd00::2]:8780')).toBe('udp://[fd00::2]:8780');
    expect(parseUdpUrl('udp://[fd00::2]:8780')).toEqual({ host: 'fd00::2', port: 8780 });
    expect(() => parseUdpUrl('http://x:1')).toThrow(/udp:\/\/host:port/);
  });
});
