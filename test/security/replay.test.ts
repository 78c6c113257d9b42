import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/peer/auth.js';
import { ReplayGuard } from '../../src/peer/replay.js';
import { UdpServer } from '../../src/peer/udp.js';
import { heartbeat, randomSecret, startApi } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nha-replay-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('replays across restarts are refused', () => {
  it('HTTP: a heartbeat captured before the receiver restarted is refused afterwards', async () => {
    const secret = randomSecret();
    const dir = tempDir();
    const file = join(dir, 'replay-marks.json');
    const first = await startApi({ secret, replay: new ReplayGuard(file) });
    await sleep(2);
    const body = JSON.stringify(heartbeat('a'));
    const headers = { 'content-type': 'application/json', ...signRequest(secret, 'a', 'POST', '/peer/heartbeat', body) };
    expect((await fetch(`${first.url}/peer/heartbeat`, { method: 'POST', headers, body })).status).toBe(200);
    await first.close();
    await sleep(5);
    const second = await startApi({ secret, replay: new ReplayGuard(file) });
    cleanups.push(() => second.close());
    const again = await fetch(`${second.url}/peer/heartbeat`, { method: 'POST', headers, body });
    expect(again.status).toBe(401);
    expect(((await again.json()) as { message: string }).message).toMatch(/before this receiver started/);
    expect(second.calls).toEqual([]);
  });

  it('a sender whose clock runs ahead cannot have its requests replayed after a restart (persisted mark)', () => {
    const file = join(tempDir(), 'replay-marks.json');
    const ahead = Date.now() + 10_000;
    const g1 = new ReplayGuard(file);
    expect(g1.check('a', ahead)).toBeNull();
    g1.accepted('a', ahead);
    g1.close();
    const g2 = new ReplayGuard(file);
    expect(g2.check('a', ahead)).toMatch(/before this receiver started/);
    expect(g2.check('a', ahead + 1)).toBeNull();
    // Other senders are not held back by a's clock.
    expect(g2.check('b', Date.now() + 1)).toBeNull();
  });

  it('UDP: a datagram captured before the receiver restarted is refused afterwards', async () => {
    const secret = randomSecret();
    const file = join(tempDir(), 'replay-marks.json');
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => {
      raw.close();
    });
    const start = async () => {
      const calls: unknown[] = [];
      const rejects: string[] = [];
      const s = new UdpServer('b', secret, { '/peer/heartbeat': (body) => (calls.push(body), { status: 200, body: {} }) }, (reason) => rejects.push(reason), new ReplayGuard(file));
      const port = await s.listen('127.0.0.1', 0);
      return { s, port, calls, rejects };
    };
    const one = await start();
    await sleep(2);
    const json = JSON.stringify({ k: 'q', id: randomBytes(12).toString('hex'), n: 'a', ts: Date.now(), p: '/peer/heartbeat', b: heartbeat('a') });
    const datagram = Buffer.from(`NHA1 ${createHmac('sha256', secret).update('nha-udp-1\n').update(json).digest('hex')} ${json}`);
    raw.send(datagram, one.port, '127.0.0.1');
    for (let i = 0; i < 100 && one.calls.length === 0; i++) await sleep(10);
    expect(one.calls).toHaveLength(1);
    one.s.close();
    await sleep(5);
    const two = await start();
    cleanups.push(() => two.s.close());
    raw.send(datagram, two.port, '127.0.0.1');
    for (let i = 0; i < 100 && two.rejects.length === 0; i++) await sleep(10);
    expect(two.calls).toEqual([]);
    expect(two.rejects[0]).toMatch(/before this receiver started/);
  });
});
