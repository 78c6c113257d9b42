/**
 * The versioned peer protocol: every authenticated request and reply states its version and release; a
 * version outside [own - 1, own] gets a signed PEER_INCOMPATIBLE answer (HTTP and UDP) after
 * authentication, never before; an unsigned "incompatible" answer proves nothing.
 */
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { HEADER, signReply, signRequest } from '../../src/peer/auth.js';
import type { KeyInput } from '../../src/peer/keyring.js';
import { PeerClient } from '../../src/peer/client.js';
import { PROTOCOL_HEADER, PROTOCOL_MAX_HEADER, PROTOCOL_VERSION, RELEASE_HEADER, ownProtocol, protocolProblem, versionFor } from '../../src/peer/protocol.js';
import { UdpClient, UdpServer } from '../../src/peer/udp.js';
import { createWitnessApp, WitnessState } from '../../src/cluster/witness.js';
import { systemClock } from '../../src/clock.js';
import { closeServer, heartbeat, listen, randomSecret, startApi } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const me = ownProtocol();

describe('the protocol window', () => {
  it.each([
    [PROTOCOL_VERSION, null],
    [PROTOCOL_VERSION - 1, null],
    [PROTOCOL_VERSION + 1, /speaks protocol 3, this node .* speaks 1-2: upgrade this node/],
    [PROTOCOL_VERSION + 5, /upgrade this node/],
  ])('protocol %s: %s', (v, problem) => {
    const p = protocolProblem(v);
    if (problem === null) expect(p).toBeNull();
    else expect(p).toMatch(problem);
  });

  it('a node made to speak 5 refuses 3 as too old; a release of version 1 checks nothing', () => {
    expect(protocolProblem(3, { version: 5, accepts: [4, 5], release: 'x' })).toMatch(/upgrade the peer first/);
    expect(protocolProblem(7, { version: 1, accepts: [1, 1], release: 'x' })).toBeNull();
  });
});

describe('HTTP peer requests', () => {
  async function send(api: { url: string; secret: KeyInput }, extra: Record<string, string>, secret: KeyInput = api.secret) {
    const body = JSON.stringify(heartbeat('a'));
    const headers: Record<string, string> = { 'content-type': 'application/json', ...extra, ...signRequest(secret, 'a', 'POST', '/peer/heartbeat', body) };
    const res = await fetch(`${api.url}/peer/heartbeat`, { method: 'POST', headers, body });
    return { res, nonce: headers[HEADER.nonce], text: await res.text() };
  }

  it("a request without a version is version 1 and accepted; the reply is written in it and states this node's own", async () => {
    const api = await startApi();
    cleanups.push(() => api.close());
    const { res } = await send(api, {});
    expect(res.status).toBe(200);
    expect(res.headers.get(PROTOCOL_HEADER)).toBe('1');
    expect(res.headers.get(PROTOCOL_MAX_HEADER)).toBe(String(PROTOCOL_VERSION));
    expect(res.headers.get(RELEASE_HEADER)).toBe(me.release);
    expect(api.calls.map((c) => c.kind)).toEqual(['heartbeat']);
    expect(api.protocols).toEqual([{ node: 'a', protocol: 1, release: null, problem: null }]);
  });

  it('a newer version is refused with a signed PEER_INCOMPATIBLE, the agent told, the route never reached', async () => {
    const api = await startApi();
    cleanups.push(() => api.close());
    const { res, text } = await send(api, { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 2), [RELEASE_HEADER]: '9.9.9' });
    expect(res.status).toBe(400);
    const body = JSON.parse(text) as { error: string; protocol: number; accepts: number[]; release: string };
    expect(body).toMatchObject({ error: 'PEER_INCOMPATIBLE', protocol: PROTOCOL_VERSION, accepts: me.accepts, release: me.release });
    expect(res.headers.get(HEADER.replySignature)).toBeTruthy();
    expect(api.calls).toEqual([]);
    expect(api.protocols).toEqual([{ node: 'a', protocol: PROTOCOL_VERSION + 2, release: '9.9.9', problem: expect.stringMatching(/upgrade this node/) }]);
    // One version ahead: refused as well (this node cannot read it), but the sender can write in this
    // node's version once told, so it is negotiating, not incompatible.
    const next = await send(api, { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 1) });
    expect(next.res.status).toBe(400);
    expect(api.protocols.at(-1)).toEqual({ node: 'a', protocol: PROTOCOL_VERSION + 1, release: null, problem: null });
  });

  it('authentication comes first: an unsigned or wrongly signed request stating a newer version gets 401, nothing reported', async () => {
    const api = await startApi();
    cleanups.push(() => api.close());
    const { res } = await send(api, { [PROTOCOL_HEADER]: '99' }, randomSecret());
    expect(res.status).toBe(401);
    const bare = await fetch(`${api.url}/peer/heartbeat`, { method: 'POST', headers: { [PROTOCOL_HEADER]: '99' }, body: '{}' });
    expect(bare.status).toBe(401);
    expect(api.protocols).toEqual([]);
    expect(api.calls).toEqual([]);
  });

  it('the client: a signed refusal is PEER_INCOMPATIBLE, a forged one an authentication failure, a newer reply is not read', async () => {
    const secret = randomSecret();
    const app = express();
    app.use(express.raw({ type: '*/*' }));
    app.post('/peer/forged', (_req, res) => void res.status(400).json({ error: 'PEER_INCOMPATIBLE', message: 'forged' }));
    app.post('/peer/signed', (req, res) => {
      const body = JSON.stringify({ error: 'PEER_INCOMPATIBLE', message: 'the peer speaks protocol 2, this node accepts 3-4' });
      res.status(400).set(signReply(secret, 'b', String(req.headers[HEADER.nonce]), 400, body)).type('json').send(body);
    });
    app.post('/peer/newer', (req, res) => {
      const body = JSON.stringify({ ok: true });
      res.set({ [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 1), ...signReply(secret, 'b', String(req.headers[HEADER.nonce]), 200, body) }).type('json').send(body);
    });
    const l = await listen(app);
    cleanups.push(() => closeServer(l.server));
    const client = new PeerClient('a', secret);
    cleanups.push(() => client.close());
    await expect(client.post(l.url, '/peer/signed', {}, 2000)).rejects.toMatchObject({ code: 'PEER_INCOMPATIBLE' });
    await expect(client.post(l.url, '/peer/forged', {}, 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
    await expect(client.post(l.url, '/peer/newer', {}, 2000)).rejects.toMatchObject({ code: 'PEER_INCOMPATIBLE', message: expect.stringMatching(/upgrade this node/) });
  });

  it('negotiation: a peer whose own version is the previous one refuses once, then is written to in its version', async () => {
    const secret = randomSecret();
    const seen: string[] = [];
    const app = express();
    app.use(express.raw({ type: '*/*' }));
    app.post('/peer/old', (req, res) => {
      const v = String(req.headers[PROTOCOL_HEADER] ?? '1');
      seen.push(v);
      const nonce = String(req.headers[HEADER.nonce]);
      const body = v === '1' ? JSON.stringify({ ok: true }) : JSON.stringify({ error: 'PEER_INCOMPATIBLE', message: 'speaks 1 only', protocol: 1 });
      const status = v === '1' ? 200 : 400;
      res.status(status).set({ [PROTOCOL_HEADER]: '1', ...signReply(secret, 'b', nonce, status, body) }).type('json').send(body);
    });
    const l = await listen(app);
    cleanups.push(() => closeServer(l.server));
    const client = new PeerClient('a', secret);
    cleanups.push(() => client.close());
    expect(await client.post(l.url, '/peer/old', {}, 2000)).toEqual({ ok: true });
    expect(await client.post(l.url, '/peer/old', {}, 2000)).toEqual({ ok: true });
    expect(seen).toEqual([String(PROTOCOL_VERSION), '1', '1']);
    expect(versionFor(l.url)).toBe(1);
  });
});

describe('the witness', () => {
  it('refuses a lease call in a newer version with a signed PEER_INCOMPATIBLE and grants nothing; the same call in its version is granted', async () => {
    const secret = randomSecret();
    const state = new WitnessState(systemClock, null);
    const seen: Array<[string, number, string | null, string | null]> = [];
    const w = await listen(createWitnessApp(state, secret, undefined, { onProtocol: (...a) => void seen.push(a) }));
    cleanups.push(() => closeServer(w.server));
    const call = async (v: number) => {
      const body = JSON.stringify({ node: 'a', epoch: 1, leaseMs: 1000 });
      const headers = { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(v), ...signRequest(secret, 'a', 'POST', '/witness/acquire', body) };
      const res = await fetch(`${w.url}/witness/acquire`, { method: 'POST', headers, body });
      return { status: res.status, body: (await res.json()) as { error?: string; granted?: boolean } };
    };
    const refused = await call(PROTOCOL_VERSION + 2);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('PEER_INCOMPATIBLE');
    expect(state.read().holder).toBeNull();
    const granted = await call(PROTOCOL_VERSION);
    expect(granted.body.granted).toBe(true);
    expect(seen.map((x) => [x[1], x[3] === null])).toEqual([
      [PROTOCOL_VERSION + 2, false],
      [PROTOCOL_VERSION, true],
    ]);
  });
});

describe('UDP peer requests', () => {
  /** A request datagram as a node of protocol `v` sends it (no `v` field: version 1). */
  function datagram(secret: string, v: number | null): Buffer {
    const frame = { k: 'q', id: randomBytes(12).toString('hex'), n: 'a', ts: Date.now(), p: '/peer/heartbeat', b: heartbeat('a'), ...(v === null ? {} : { v, r: 'x.y.z' }) };
    const json = JSON.stringify(frame);
    const sig = createHmac('sha256', secret).update('nha-udp-1\n').update(json).digest('hex');
    return Buffer.from(`NHA1 ${sig} ${json}`);
  }

  async function exchange(port: number, msg: Buffer): Promise<{ s: number; b: { error?: string }; v?: number; m?: number }> {
    const sock = dgram.createSocket('udp4');
    cleanups.push(() => void sock.close());
    const reply = new Promise<Buffer>((resolve) => sock.once('message', resolve));
    sock.send(msg, port, '127.0.0.1');
    const text = (await reply).toString();
    return JSON.parse(text.slice(text.indexOf(' ', 5) + 1)) as { s: number; b: { error?: string }; v?: number; m?: number };
  }

  it('answers version 1 and its own, and refuses a newer one with a signed 400 PEER_INCOMPATIBLE', async () => {
    const secret = randomSecret();
    const seen: Array<[string, number, string | null, string | null]> = [];
    let handled = 0;
    const server = new UdpServer('b', secret, { '/peer/heartbeat': () => (handled++, { status: 200, body: { ok: true } }) }, undefined, undefined, undefined, (...a) => void seen.push(a));
    const port = await server.listen('127.0.0.1', 0);
    cleanups.push(() => server.close());
    // Written in the request's version, stating this node's own.
    expect(await exchange(port, datagram(secret, null))).toMatchObject({ s: 200, v: 1, m: PROTOCOL_VERSION });
    expect(await exchange(port, datagram(secret, PROTOCOL_VERSION))).toMatchObject({ s: 200 });
    for (const v of [PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2]) {
      const refused = await exchange(port, datagram(secret, v));
      expect(refused.s).toBe(400);
      expect(refused.b.error).toBe('PEER_INCOMPATIBLE');
    }
    expect(handled).toBe(2);
    // One version ahead is negotiation (the sender can write in ours), two is an incompatibility.
    expect(seen.map((x) => [x[1], x[3] === null])).toEqual([
      [1, true],
      [PROTOCOL_VERSION, true],
      [PROTOCOL_VERSION + 1, true],
      [PROTOCOL_VERSION + 2, false],
    ]);
    // The client of this process speaks the current version: accepted, and it reads the reply.
    const client = new UdpClient('a', secret);
    cleanups.push(() => client.close());
    await expect(client.post(`udp://127.0.0.1:${port}`, '/peer/heartbeat', heartbeat('a'), 2000)).resolves.toEqual({ ok: true });
  });
});
