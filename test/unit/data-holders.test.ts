/**
 * The data-holder record (safety invariant 2): the witness grants a new epoch only to a holder, only the
 * primary changes the record, and decide() never promotes a node the record does not name.
 */
import { describe, expect, it } from 'vitest';
import { WitnessState } from '../../src/cluster/witness.js';
import { decide, notAHolder } from '../../src/cluster/decide.js';
import type { Clock } from '../../src/ports.js';
import { NOW, T, peer, silentPeer, standbyView, primaryView } from '../helpers/views.js';
import { manualClock } from '../helpers/manual-clock.js';

function fakeClock() {
  let t = 1000;
  const clock: Clock = manualClock(() => t);
  return { clock, advance: (ms: number) => (t += ms) };
}

describe('WitnessState data-holder record', () => {
  it('a grant with the record kept names the new primary alone; a non-holder is refused after the lease ran out', () => {
    const { clock, advance } = fakeClock();
    const w = new WitnessState(clock, null);
    expect(w.acquire('a', 1, 700, { holderRecord: true })).toMatchObject({ granted: true, holders: ['a'] });
    expect(w.setHolders('a', 1, ['a', 'b'])).toMatchObject({ granted: true, holders: ['a', 'b'] });
    advance(1000); // a's lease expired: b (a holder) may take over
    expect(w.acquire('b', 2, 700, { holderRecord: true })).toMatchObject({ granted: true, holders: ['b'] });
    advance(1000); // b dies alone holding writes a never saw: a must not be granted
    expect(w.acquire('a', 3, 700, { holderRecord: true })).toMatchObject({ granted: false, reason: 'not-a-holder', holders: ['b'] });
    expect(w.acquire('b', 3, 700, { holderRecord: true })).toMatchObject({ granted: true, holders: ['b'] });
  });

  it('only the lease holder at the current epoch changes the record, and must stay in it', () => {
    const { clock } = fakeClock();
    const w = new WitnessState(clock, null);
    w.acquire('a', 1, 700, { holderRecord: true });
    expect(w.setHolders('b', 1, ['b'])).toMatchObject({ granted: false, reason: 'not-the-primary', holders: ['a'] });
    expect(w.setHolders('a', 0, ['a', 'b'])).toMatchObject({ granted: false, reason: 'not-the-primary' });
    expect(w.setHolders('a', 1, ['b'])).toMatchObject({ granted: false, reason: 'primary-not-in-record' });
    expect(w.setHolders('a', 1, null)).toMatchObject({ granted: true, holders: null });
  });

  it('force overrides the record but never a live lease', () => {
    const { clock, advance } = fakeClock();
    const w = new WitnessState(clock, null);
    w.acquire('b', 1, 700, { holderRecord: true });
    expect(w.acquire('a', 2, 700, { force: true })).toMatchObject({ granted: false, reason: 'lease-held' });
    advance(701);
    expect(w.acquire('a', 2, 700, { force: true })).toMatchObject({ granted: true, holders: ['a'] });
  });

  it('the record survives a witness restart', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'nha-witness-'));
    try {
      const { clock, advance } = fakeClock();
      const file = join(dir, 'witness.json');
      const w = new WitnessState(clock, file);
      w.acquire('b', 4, 700, { holderRecord: true });
      advance(20_000);
      const again = new WitnessState(clock, file);
      advance(20_000);
      expect(again.read().holders).toEqual(['b']);
      expect(again.acquire('a', 5, 700, { holderRecord: true })).toMatchObject({ granted: false, reason: 'not-a-holder' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const kept = (holders: string[] | null) => ({ holderRecord: { kept: true, holders } });

describe('decide() with the data-holder record', () => {
  const orphan = (over = {}) =>
    standbyView({ peer: silentPeer(900, { role: 'primary', epoch: 5 }), promiseUntil: 0, lastCampaignAt: null, ...over });

  it.each([
    {
      name: 'a holder whose election the witness granted promotes',
      view: orphan({ ...kept(['a']), election: { epoch: 6, granted: ['witness'], refused: ['b'] } }),
      promote: true,
      reason: /promote: epoch 6/,
    },
    {
      name: 'peer vote alone is not enough while the record is kept (witness refused: not a holder)',
      view: standbyView({ ...kept(['b']), peer: peer({ role: 'standby' }), promiseUntil: 0, election: { epoch: 6, granted: ['b'], refused: ['witness'], witnessRefusal: 'not-a-holder' } }),
      promote: false,
      reason: /data-holder record names b/,
    },
    {
      name: 'peer vote alone is not enough while the witness is unreachable',
      view: standbyView({ ...kept(['a', 'b']), peer: peer({ role: 'standby' }), promiseUntil: 0, election: { epoch: 6, granted: ['b'], refused: ['witness'], witnessRefusal: 'unreachable: timeout' } }),
      promote: false,
      reason: /did not confirm/,
    },
    {
      name: 'the old primary handing over proves the data: its vote suffices',
      view: standbyView({ ...kept(['a']), peer: peer({ role: 'standby', takeoverOffer: 6 }), promiseUntil: 0, election: { epoch: 6, granted: ['b'], refused: ['witness'], handoverGrant: true } }),
      promote: true,
      reason: /promote/,
    },
    {
      name: 'without a kept record the peer vote suffices (async cluster)',
      view: standbyView({ peer: peer({ role: 'standby' }), promiseUntil: 0, election: { epoch: 6, granted: ['b'], refused: ['witness'] } }),
      promote: true,
      reason: /promote/,
    },
  ])('$name', ({ view, promote, reason }) => {
    const d = decide(view);
    expect(d.actions.some((x) => x.kind === 'promote')).toBe(promote);
    expect(d.reason).toMatch(reason);
  });

  it('a node outside the record asks again only about once a lease and names the operator command', () => {
    const v = orphan({ ...kept(['b']), lastCampaignAt: NOW - T.heartbeatMs });
    expect(notAHolder(v)).toBe(true);
    const d = decide(v);
    expect(d.actions.some((x) => x.kind === 'campaign')).toBe(false);
    expect(d.reason).toMatch(/promote --accept-data-loss/);
    const later = decide(orphan({ ...kept(['b']), lastCampaignAt: NOW - T.leaseMs }));
    expect(later.actions.filter((x) => x.kind === 'campaign')).toHaveLength(1);
  });

  it('an operator promote request campaigns with force; the witness refusal completes it as refused', () => {
    const req = { id: 'r1', kind: 'promote' as const };
    const first = decide(orphan({ ...kept(['b']), request: req }));
    expect(first.actions).toContainEqual(expect.objectContaining({ kind: 'campaign', force: true }));
    const refused = decide(orphan({ ...kept(['b']), request: req, election: { epoch: 6, granted: [], refused: ['witness'], forced: true, witnessRefusal: 'lease-held' } }));
    expect(refused.actions).toContainEqual(expect.objectContaining({ kind: 'completeRequest', id: 'r1', ok: false }));
    const granted = decide(orphan({ ...kept(['a']), request: req, election: { epoch: 6, granted: ['witness'], refused: [], forced: true } }));
    expect(granted.actions).toContainEqual(expect.objectContaining({ kind: 'completeRequest', id: 'r1', ok: true }));
    expect(granted.actions.some((x) => x.kind === 'promote')).toBe(true);
  });

  it('a promote request is refused while the peer is primary, and on a primary', () => {
    const req = { id: 'r2', kind: 'promote' as const };
    const d = decide(standbyView({ ...kept(['b']), request: req }));
    expect(d.actions).toContainEqual(expect.objectContaining({ kind: 'completeRequest', id: 'r2', ok: false }));
    expect(d.actions.some((x) => x.kind === 'campaign')).toBe(false);
    const p = decide(primaryView({ request: req }));
    expect(p.actions).toContainEqual(expect.objectContaining({ kind: 'completeRequest', id: 'r2', ok: false }));
  });

  it('escalation hands over to a standby named in the record even when it cannot look caught up (dead database)', () => {
    const notCaughtUp = peer({ caughtUp: false, holder: true });
    const d = decide(primaryView({ escalated: true, peer: notCaughtUp, ...kept(['a', 'b']) }));
    expect(d.actions.some((x) => x.kind === 'handover')).toBe(true);
    const no = decide(primaryView({ escalated: true, peer: peer({ caughtUp: false, holder: false }), ...kept(['a']) }));
    expect(no.actions.some((x) => x.kind === 'handover')).toBe(false);
  });
});
