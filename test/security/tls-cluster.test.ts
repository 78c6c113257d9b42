/**
 * The pair and the witness as real `nimbus-ha run` / `nimbus-ha witness` processes over mutual TLS, with
 * the certificates of `nimbus-ha certs init`: they elect a primary, fail over on kill -9, and the API port
 * speaks no clear text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';

describe('a node pair and the witness over mutual TLS (real processes)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ tls: true });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby over TLS');
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('elects a primary with every voter, fails over on kill -9, and refuses clear text on the API port', async () => {
    const a = (await c.status('a'))!;
    expect(a.peers[0].alive).toBe(true);
    expect(a.witness.last_error).toBeNull();
    expect(a.witness.url).toMatch(/(https|udp):\/\//);

    // The API port speaks TLS only: a plain HTTP request gets no HTTP answer.
    const plain = await fetch(`http://127.0.0.1:${c.nodes.a.apiPort}/health`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status,
      () => null,
    );
    expect(plain === null || plain === 400).toBe(true);

    const epoch = a.epoch as number;
    c.kill('a');
    await c.waitFor((_a, b) => b?.role === 'primary', 20_000, 'b primary over TLS');
    expect((await c.status('b'))!.epoch).toBeGreaterThan(epoch);
    const failover = (await c.events('b', 'failover')).at(-1);
    expect(failover).toBeTruthy();
  });
});
