import express from 'express';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createWitnessApp, WitnessState } from '../../src/cluster/witness.js';
import { PeerClient } from '../../src/peer/client.js';
import { systemClock } from '../../src/clock.js';
import { closeServer, heartbeat, listen, randomSecret, startApi } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A man in the middle on loopback: forwards to `target` and may rewrite the reply body. */
async function mitm(targetPort: number, rewrite: (body: string) => string) {
  const app = express();
  app.use(express.raw({ type: '*/*', limit: '1mb' }));
  app.all('*', (req, res) => {
    const up = http.request({ host: '127.0.0.1', port: targetPort, path: req.originalUrl, method: req.method, headers: req.headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const body = rewrite(Buffer.concat(chunks).toString('utf8'));
        const headers = { ...r.headers, 'content-length': String(Buffer.byteLength(body)) };
        res.writeHead(r.statusCode ?? 502, headers).end(body);
      });
    });
    up.end(Buffer.isBuffer(req.body) ? req.body : undefined);
  });
  const l = await listen(app);
  cleanups.push(() => closeServer(l.server));
  return l.url;
}

describe('replies over HTTP are verified', () => {
  it('a heartbeat ack from the real sidecar API verifies; a forged or altered one is refused', async () => {
    const api = await startApi();
    cleanups.push(() => api.close());
    const client = new PeerClient('a', api.secret);
    cleanups.push(() => client.close());
    const ok = await client.post<{ ack: boolean }>(api.url, '/peer/heartbeat', heartbeat('a'), 2000);
    expect(ok.ack).toBe(true);
    // Someone on the path turns a refusal into an ack (here: flips a field of a genuine reply).
    const evil = await mitm(api.port, (b) => b.replace('"ack":true', '"ack":false'));
    await expect(client.post(evil, '/peer/heartbeat', heartbeat('a'), 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
  });

  it('an unsigned 200 with {"ack": true} from an impostor is not a vote', async () => {
    const app = express();
    app.post('/peer/heartbeat', (_req, res) => res.json({ state: { node: 'b', role: 'standby', epoch: 3 }, ack: true }));
    const l = await listen(app);
    cleanups.push(() => closeServer(l.server));
    const client = new PeerClient('a', randomSecret());
    cleanups.push(() => client.close());
    await expect(client.post(l.url, '/peer/heartbeat', heartbeat('a'), 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
  });

  it('the witness signs its answers; a forged `granted` is refused', async () => {
    const secret = randomSecret();
    const w = await listen(createWitnessApp(new WitnessState(systemClock, null), secret));
    cleanups.push(() => closeServer(w.server));
    const client = new PeerClient('a', secret);
    cleanups.push(() => client.close());
    const health = (await (await fetch(`${w.url}/health`)).json()) as Record<string, unknown>;
    expect(health.ok).toBe(true);
    const genuine = await client.post<{ epoch: number }>(w.url, '/witness/read', {}, 2000);
    expect(genuine.epoch).toBe(0);
    const evil = await mitm(w.port, (b) => b.replace('"epoch":0', '"epoch":7'));
    await expect(client.post(evil, '/witness/read', {}, 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
    const impostor = express();
    impostor.post('/witness/acquire', (_req, res) => res.json({ granted: true, epoch: 1, holder: 'a', leaseMs: 700 }));
    const i = await listen(impostor);
    cleanups.push(() => closeServer(i.server));
    await expect(client.post(i.url, '/witness/acquire', { node: 'a', epoch: 1, leaseMs: 700 }, 2000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
  });
});
