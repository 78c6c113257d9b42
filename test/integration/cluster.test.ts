import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, GapProbe, SplitBrainChecker, cliPath } from '../../fixtures/cluster.js';
import { signRequest } from '../../src/peer/auth.js';
import { sleep, upAndPrimary } from '../helpers/wait.js';

const run = promisify(execFile);
let cluster: Cluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('two-node cluster with witness (real processes on loopback)', () => {
  it('kill -9 primary -> standby takes over at epoch+1; old primary returns as standby; switchover back', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const before = (await cluster.status('a'))!.epoch as number;
    const probe = new GapProbe(cluster.vipUrl, 10);
    probe.start();
    await sleep(500);
    const killAt = performance.now();
    cluster.kill('a');
    await cluster.waitFor((_a, b) => b?.role === 'primary', 15_000, 'b primary');
    const b = (await cluster.status('b'))!;
    expect(b.epoch).toBe(before + 1);
    // Heartbeats went over UDP (the default) to the same ports as the peer's URLs.
    expect(b.peers[0].paths.map((p: { url: string }) => p.url)).toEqual(cluster.nodes.a.inbound.map((p) => `udp://127.0.0.1:${p.port}`));
    const ev = (await cluster.events('b', 'failover')).at(-1);
    expect(ev.details).toMatchObject({ kind: 'failover', epoch_before: before, epoch_after: before + 1 });
    expect(ev.details.detect_ms).toBeGreaterThanOrEqual(400);
    await probe.answeredAfter(performance.now(), 5000);
    const body = await (await fetch(cluster.vipUrl)).json();
    expect(body.node).toBe('b');
    // Nobody can answer through the VIP before b declared a dead (at most one heartbeat after the kill).
    const gap = probe.gapAfter(killAt);
    expect(gap).toBeGreaterThanOrEqual(ev.details.detect_ms - 150);
    expect(gap).toBeLessThan(10_000);

    cluster.startNode('a');
    await cluster.waitFor((a2, b2) => a2?.role === 'standby' && b2?.role === 'primary', 15_000, 'a back as standby');
    // No preemption: a stays standby for a while even though it is the preferred node.
    await sleep(1500);
    expect((await cluster.status('a'))!.role).toBe('standby');
    expect((await cluster.status('b'))!.role).toBe('primary');

    const sw = await cluster.admin('b', '/admin/switchover', { to: 'a' });
    expect(sw.status).toBe(202);
    await cluster.waitFor((a3, b3) => a3?.role === 'primary' && b3?.role === 'standby', 15_000, 'switchover back to a');
    expect((await cluster.status('a'))!.epoch).toBe(before + 2);
    await sleep(300);
    expect((await (await fetch(cluster.vipUrl)).json()).node).toBe('a');
    probe.stop();
    const swEv = (await cluster.events('a', 'switchover')).at(-1);
    expect(swEv.details.kind).toBe('switchover');
  });

  it('heartbeats and witness calls over HTTP (heartbeat: http): a standby that only answers still takes over on kill -9', async () => {
    cluster = new Cluster({ transport: 'http' });
    await upAndPrimary(cluster);
    const before = (await cluster.status('a'))!.epoch as number;
    await sleep(500);
    const b0 = (await cluster.status('b'))!;
    expect(b0.peers[0].paths.map((p: { url: string }) => p.url)).toEqual(cluster.nodes.a.inbound.map((p) => `http://127.0.0.1:${p.port}`));
    // The standby answers the primary's heartbeats instead of sending its own on both paths.
    expect(b0.peers[0].paths.every((p: { answered_only: number; inbound_age_ms: number | null }) => p.answered_only > 0 && p.inbound_age_ms !== null)).toBe(true);
    cluster.kill('a');
    await cluster.waitFor((_a, b) => b?.role === 'primary', 15_000, 'b primary');
    expect((await cluster.status('b'))!.epoch).toBe(before + 1);
    const ev = (await cluster.events('b', 'failover')).at(-1);
    expect(ev.details.detect_ms).toBeGreaterThanOrEqual(400);
  });

  it('one heartbeat path cut: no failover, a path_degraded event, path restored later', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const epoch = (await cluster.status('a'))!.epoch;
    const metrics = async (n: 'a' | 'b') => {
      const text = await (await fetch(`${cluster!.nodes[n].url}/metrics`)).text();
      const value = (series: string) => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? undefined : Number(line.slice(series.length + 1));
      };
      return { text, value };
    };
    await cluster.waitFor((_a, b) => b?.role === 'standby' && b.epoch === epoch, 10_000, 'b standby at the primary\'s epoch');
    const m0 = await metrics('b');
    expect(m0.value('nimbus_ha_role{role="standby"}')).toBe(1);
    expect(m0.value('nimbus_ha_epoch')).toBe(epoch);
    expect(m0.value('nimbus_ha_process_resident_memory_bytes')).toBeGreaterThan(0);
    const lag = m0.value('nimbus_ha_heartbeat_timer_lag_seconds');
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(1);
    const ages = m0.text.split('\n').filter((l) => l.startsWith('nimbus_ha_heartbeat_age_seconds{'));
    expect(ages).toHaveLength(2);
    cluster.nodes.a.inbound[0].down();
    cluster.nodes.b.inbound[0].down();
    await sleep(3000);
    // The cut path's age grows past dead-after; the other stays fresh.
    const cutAges = (await metrics('b')).text.split('\n').filter((l) => l.startsWith('nimbus_ha_heartbeat_age_seconds{')).map((l) => Number(l.split(' ').at(-1)));
    expect(Math.max(...cutAges)).toBeGreaterThan(0.5);
    expect(Math.min(...cutAges)).toBeLessThan(0.5);
    const [a, b] = [await cluster.status('a'), await cluster.status('b')];
    expect(a!.role).toBe('primary');
    expect(b!.role).toBe('standby');
    expect(a!.epoch).toBe(epoch);
    expect(b!.peers[0].paths[0].degraded).toBe(true);
    expect(b!.peers[0].paths[1].degraded).toBe(false);
    expect((await cluster.events('b', 'path_degraded')).length).toBeGreaterThan(0);
    expect(await cluster.events('b', 'failover')).toEqual([]);
    cluster.nodes.a.inbound[0].up();
    cluster.nodes.b.inbound[0].up();
    await cluster.waitFor((_a, b2) => b2?.peers[0].paths[0].degraded === false, 5000, 'path restored');
    // The event is recorded by the next decision cycle after the path answers again.
    const until = Date.now() + 3000;
    while ((await cluster.events('b', 'path_restored')).length === 0 && Date.now() < until) await sleep(50);
    expect((await cluster.events('b', 'path_restored')).length).toBeGreaterThan(0);
  });

  it('nodes on different timings: peer_timings_differ on both, roles kept; peer_timings_match once they agree', async () => {
    let bTimings: Record<string, number> | null = { heartbeatMs: 200, deadAfterMs: 1000, leaseMs: 1400 };
    cluster = new Cluster({ extraConfig: (name) => (name === 'b' && bTimings ? { timings: bTimings } : {}) });
    await upAndPrimary(cluster);
    const c = cluster;
    const eventually = async (what: string, cond: () => Promise<boolean>) => {
      const until = Date.now() + 5000;
      while (!(await cond())) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };
    await eventually('peer_timings_differ on a', async () => (await c.events('a', 'peer_timings_differ')).length > 0);
    await eventually('peer_timings_differ on b', async () => (await c.events('b', 'peer_timings_differ')).length > 0);
    const differ = (await c.events('a', 'peer_timings_differ'))[0];
    expect(differ.details).toMatchObject({ peer: 'b', peerTimings: { heartbeatMs: 200, deadAfterMs: 1000, leaseMs: 1400 }, ownTimings: { heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700 } });
    expect((await c.status('a'))!.peers[0].timings).toEqual({ heartbeatMs: 200, deadAfterMs: 1000, leaseMs: 1400 });
    const epoch = (await c.status('a'))!.epoch;

    // The operator aligns b and restarts it: a reports the match once, and nothing failed over.
    bTimings = null;
    c.kill('b');
    c.writeConfig('b');
    c.startNode('b');
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'b back as standby');
    await eventually('peer_timings_match on a', async () => (await c.events('a', 'peer_timings_match')).length > 0);
    const a = (await c.status('a'))!;
    expect(a.peers[0].timings).toEqual({ heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700 });
    expect(a.epoch).toBe(epoch);
    expect(await c.events('a', 'peer_timings_differ')).toHaveLength(1);
    expect(await c.events('b', 'failover')).toEqual([]);
  });

  it('primary cut off from peer and witness fences before the standby promotes; never two primaries', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const checker = new SplitBrainChecker([cluster.nodes.a.url, cluster.nodes.b.url], 10);
    checker.start();
    await sleep(300);
    cluster.isolate('a');
    await cluster.waitFor((a, b) => a?.role === 'fenced' && b?.role === 'primary', 15_000, 'a fenced, b primary');
    await sleep(500);
    checker.stop();
    expect(checker.checks).toBeGreaterThan(50);
    expect(checker.observed).toBe(0);
    const fencedAt = Date.parse((await cluster.events('a', 'fenced')).at(-1).time);
    const promotedAt = Date.parse((await cluster.events('b', 'failover')).at(-1).time);
    expect(fencedAt).toBeLessThan(promotedAt);
    // a's VIP is released while fenced; the VIP answers from b.
    expect((await cluster.status('a'))!.vip.held).toBe(false);
    expect((await (await fetch(cluster.vipUrl)).json()).node).toBe('b');
    const primaryCode = (await fetch(`${cluster.nodes.a.url}/primary`)).status;
    expect(primaryCode).toBe(503);
    // Heal: a rejoins as standby of b.
    cluster.heal('a');
    await cluster.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 15_000, 'a rejoins as standby');
  });

  it('bad admin token and forged peer HMAC get 401 and change nothing', async () => {
    cluster = new Cluster();
    await upAndPrimary(cluster);
    const before = (await cluster.status('a'))!;
    const noToken = await fetch(`${cluster.nodes.a.url}/admin/switchover`, { method: 'POST' });
    expect(noToken.status).toBe(401);
    const badToken = await fetch(`${cluster.nodes.a.url}/admin/maintenance`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong-token-0000000000', 'content-type': 'application/json' },
      body: JSON.stringify({ on: true }),
    });
    expect(badToken.status).toBe(401);
    expect((await badToken.json()).error).toBe('ADMIN_AUTH_FAILED');
    // A heartbeat claiming a higher-epoch primary, signed with the wrong secret.
    const body = JSON.stringify({ node: 'b', role: 'primary', epoch: 99, healthy: true, caughtUp: true, takeoverOffer: null, sentAt: Date.now() });
    const forged = await fetch(`${cluster.nodes.a.url}/peer/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signRequest('not-the-cluster-secret-000', 'b', 'POST', '/peer/heartbeat', body) },
      body,
    });
    expect(forged.status).toBe(401);
    const unsigned = await fetch(`${cluster.nodes.a.url}/peer/takeover`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"node":"b","epoch":99}' });
    expect(unsigned.status).toBe(401);
    await sleep(500);
    const after = (await cluster.status('a'))!;
    expect(after.role).toBe('primary');
    expect(after.epoch).toBe(before.epoch);
    expect(after.maintenance).toBe(false);
    expect(after.requests).toEqual([]);
    // Refused requests from one address are coalesced: one event now, the rest counted in the next.
    const refused = await cluster.events('a', 'peer_auth_failed');
    expect(refused.length).toBe(1);
    expect(refused[0].details).toMatchObject({ source: '127.0.0.1', count: 1 });
  });
});

describe('nimbus-ha config check', () => {
  it('exits 1 and names every bad key; exits 0 on the example', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nha-cfg-'));
    try {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'node: a\nlisten: { port: 8701 }\nsecret: short\ndataDir: /tmp\ntimings: { heartbeatMs: 5 }\n');
      const r = await run(process.execPath, [cliPath, 'config', 'check', bad]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('secret: is too short');
      expect(r.stderr).toContain('adminToken: is not set (expected ${NHA_ADMIN_TOKEN}');
      expect(r.stderr).toContain('timings.heartbeatMs: ');
      const example = join(dir, 'example.yaml');
      const { stdout } = await run(process.execPath, [cliPath, 'config', 'example']);
      writeFileSync(example, stdout);
      // The example has no default secrets: it checks only with both variables exported.
      const env = { ...process.env, NHA_SECRET: randomBytes(32).toString('base64url'), NHA_ADMIN_TOKEN: randomBytes(32).toString('base64url'), NHA_DATA_SECRET: randomBytes(32).toString('base64url') };
      const ok = await run(process.execPath, [cliPath, 'config', 'check', example], { env });
      expect(ok.stdout).toMatch(/ok \(node a, 1 peer\(s\), witness yes, vip bind-proxy\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
