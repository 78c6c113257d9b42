import { describe, expect, it } from 'vitest';
import { FrontGuard } from '../../src/replication/repo/front-guard.js';
import { signV2, stringToSignV2, verifyV2 } from '../../adapters/cumulus/sigv2.js';

function guard(claimOk: () => boolean, gone?: number) {
  let now = 10_000;
  const claims: boolean[] = [];
  const events: string[] = [];
  const g = new FrontGuard({
    degradeAfterMs: 1000,
    ...(gone !== undefined ? { standbyGoneSince: gone } : {}),
    claim: async (p) => {
      claims.push(p);
      return claimOk();
    },
    emit: (e) => events.push(e.type),
    now: () => now,
  });
  return { g, claims, events, advance: (ms: number) => (now += ms) };
}

describe('FrontGuard', () => {
  it('never acknowledges alone before the record names this node alone', async () => {
    let ok = false;
    const { g, claims, events, advance } = guard(() => ok);
    expect(await g.tick(true)).toBe('sync');
    expect(g.mayAckAlone()).toBe(false);
    expect(await g.tick(false)).toBe('waiting');
    expect(g.teeToPeer()).toBe(false);
    advance(999);
    expect(await g.tick(false)).toBe('waiting');
    expect(claims).toEqual([]);
    advance(1);
    expect(await g.tick(false)).toBe('waiting');
    expect(claims).toEqual([false]);
    expect(events).toEqual(['repo.sync.degrade_blocked']);
    expect(g.mayAckAlone()).toBe(false);
    ok = true;
    expect(await g.tick(false)).toBe('degraded');
    expect(g.mayAckAlone()).toBe(true);
    expect(events).toEqual(['repo.sync.degrade_blocked', 'repo.sync.degraded']);
  });

  it('after a failover degrades at once; names the standby again only after a clean pass that started after the last lone ack', async () => {
    const { g, claims, events } = guard(() => true, 0);
    expect(await g.tick(false)).toBe('degraded');
    expect(claims).toEqual([false]);
    // The standby is back: writes go to both again, but it is not named yet.
    g.peerPuller({ passes: 3, objectsBehind: 2, ok: true });
    expect(await g.tick(true)).toBe('sync');
    expect(events).toContain('repo.sync.restored');
    expect(g.teeToPeer()).toBe(true);
    expect(g.mayAckAlone()).toBe(true);
    g.peerPuller({ passes: 4, objectsBehind: 0, ok: true });
    await g.tick(true); // baseline: 5
    g.ackedAlone(); // a tee that failed: baseline moves to 5
    g.peerPuller({ passes: 5, objectsBehind: 0, ok: true });
    await g.tick(true);
    expect(g.standbyHolds).toBe(false);
    g.peerPuller({ passes: 6, objectsBehind: 0, ok: true });
    await g.tick(true);
    expect(claims).toEqual([false, true]);
    expect(g.standbyHolds).toBe(true);
    expect(g.mayAckAlone()).toBe(false);
  });

  it('a failed claim(true) keeps the lone-ack permission (the record still names this node alone)', async () => {
    let ok = true;
    const { g } = guard(() => ok, 0);
    await g.tick(false);
    ok = false;
    g.peerPuller({ passes: 1, objectsBehind: 0, ok: true });
    await g.tick(true);
    g.peerPuller({ passes: 3, objectsBehind: 0, ok: true });
    await g.tick(true);
    expect(g.standbyHolds).toBe(false);
    expect(g.mayAckAlone()).toBe(true);
  });
});

describe('FrontGuard: the standby is named again only once it holds what was acknowledged alone', () => {
  it('a pass count that says "caught up" is not enough while the standby lacks a lone write (stale heartbeats)', async () => {
    let now = 10_000;
    const claims: boolean[] = [];
    const standby = new Map<string, string>(); // path -> etag on the standby
    const asked: string[][] = [];
    const g = new FrontGuard({
      degradeAfterMs: 1000,
      standbyGoneSince: 0,
      claim: async (p) => (claims.push(p), true),
      verify: async (writes) => {
        asked.push(writes.map((w) => w.path));
        return writes.every((w) => (w.deleted ? !standby.has(w.path) : standby.get(w.path) === w.etag));
      },
      now: () => now,
    });
    await g.tick(false); // degraded after a failover: acknowledging alone is allowed
    g.peerPuller({ passes: 10, objectsBehind: 0, ok: true });
    g.ackedAlone({ path: '/Repo/VMS/u/a.img', etag: 'e1', deleted: false });
    g.ackedAlone({ path: '/Repo/VMS/u/old.img', etag: null, deleted: true });
    standby.set('/Repo/VMS/u/old.img', 'e0');
    // Heartbeats report passes that (by their count) started after the lone acks, but the objects are not there.
    g.peerPuller({ passes: 12, objectsBehind: 0, ok: true });
    now += 100;
    await g.tick(true);
    expect(g.standbyHolds).toBe(false);
    expect(g.mayAckAlone()).toBe(true);
    expect(claims).toEqual([false]);
    expect(asked.at(-1)).toEqual(['/Repo/VMS/u/a.img', '/Repo/VMS/u/old.img']);
    // The standby catches up on the write; the delete still missing keeps it out.
    standby.set('/Repo/VMS/u/a.img', 'e1');
    await g.tick(true);
    expect(g.standbyHolds).toBe(false);
    standby.delete('/Repo/VMS/u/old.img');
    await g.tick(true);
    expect(claims).toEqual([false, true]);
    expect(g.standbyHolds).toBe(true);
    expect(g.mayAckAlone()).toBe(false);
  });

  it('a write that later reached both repositories is not checked again; a lone ack during the check defers the naming', async () => {
    const claims: boolean[] = [];
    let g!: FrontGuard;
    let ackDuringCheck = true;
    g = new FrontGuard({
      degradeAfterMs: 1000,
      standbyGoneSince: 0,
      claim: async (p) => (claims.push(p), true),
      verify: async (writes) => {
        expect(writes.map((w) => w.path)).toEqual(['/Repo/b.img']);
        if (ackDuringCheck) {
          ackDuringCheck = false;
          g.ackedAlone({ path: '/Repo/c.img', etag: 'e3', deleted: false });
        }
        return true;
      },
      now: () => 10_000,
    });
    await g.tick(false);
    g.peerPuller({ passes: 1, objectsBehind: 0, ok: true });
    g.ackedAlone({ path: '/Repo/a.img', etag: 'e1', deleted: false });
    g.ackedAlone({ path: '/Repo/b.img', etag: 'e2', deleted: false });
    g.ackedBoth('/Repo/a.img');
    g.peerPuller({ passes: 5, objectsBehind: 0, ok: true });
    await g.tick(true);
    // c.img was acknowledged alone while b.img was being checked: not named this time.
    expect(g.standbyHolds).toBe(false);
    expect(claims).toEqual([false]);
  });

  it('asks the standby for a pass while it waits to be named, and no more once it is named', async () => {
    let now = 10_000;
    const asked: number[] = [];
    const g = new FrontGuard({ degradeAfterMs: 1000, claim: async () => true, requestPass: () => asked.push(now), now: () => now });
    // Not asked while the standby's puller is behind or failing: it is passing anyway.
    g.peerPuller({ passes: 2, objectsBehind: 3, ok: true });
    await g.tick(true);
    g.peerPuller({ passes: 2, objectsBehind: 0, ok: false });
    await g.tick(true);
    expect(asked).toEqual([]);
    // Level and clean: the baseline is set (3) and a pass is asked for; again at each probe until one more passed.
    g.peerPuller({ passes: 2, objectsBehind: 0, ok: true });
    await g.tick(true);
    now += 200;
    g.peerPuller({ passes: 3, objectsBehind: 0, ok: true });
    await g.tick(true);
    expect(asked).toEqual([10_000, 10_200]);
    expect(g.standbyHolds).toBe(false);
    now += 200;
    g.peerPuller({ passes: 4, objectsBehind: 0, ok: true });
    await g.tick(true);
    expect(g.standbyHolds).toBe(true);
    now += 200;
    await g.tick(true);
    expect(asked).toEqual([10_000, 10_200]);
  });
});

describe('verifyV2', () => {
  const key = { accessKeyId: 'id1', secretAccessKey: 'secret1' };
  const now = Date.parse('2026-01-01T00:00:00Z');
  const signed = (headers: Record<string, string>, secret = key.secretAccessKey) => {
    const sts = stringToSignV2({ method: 'PUT', path: '/Repo/a b.img', query: {}, headers });
    return { ...headers, authorization: `AWS id1:${signV2(sts, secret)}` };
  };
  const req = (headers: Record<string, string>) => ({ method: 'PUT', path: '/Repo/a b.img', query: {}, headers });

  it('accepts x-amz-date and Date-signed requests, refuses the rest', () => {
    const d = new Date(now).toUTCString();
    expect(verifyV2(req(signed({ 'x-amz-date': d, 'content-md5': 'abc' })), key, { nowMs: now, maxSkewMs: 60_000 }).ok).toBe(true);
    expect(verifyV2(req(signed({ date: d })), key, { nowMs: now, maxSkewMs: 60_000 }).ok).toBe(true);
    const tampered = { ...signed({ 'x-amz-date': d, 'content-md5': 'abc' }), 'content-md5': 'abd' };
    expect(verifyV2(req(tampered), key, { nowMs: now, maxSkewMs: 60_000 })).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(verifyV2(req(signed({ 'x-amz-date': d }, 'other')), key, { nowMs: now, maxSkewMs: 60_000 })).toMatchObject({ ok: false, status: 403 });
    expect(verifyV2(req({}), key, { nowMs: now, maxSkewMs: 60_000 })).toMatchObject({ ok: false, code: 'AccessDenied' });
    expect(verifyV2(req(signed({ 'x-amz-date': d })), key, { nowMs: now + 120_000, maxSkewMs: 60_000 })).toMatchObject({ ok: false, code: 'RequestTimeTooSkewed' });
    expect(verifyV2(req({ authorization: 'AWS4-HMAC-SHA256 Credential=x' }), key, { nowMs: now, maxSkewMs: 60_000 })).toMatchObject({ ok: false, status: 403 });
  });
});
