import { describe, expect, it } from 'vitest';
import { decide, decideVote, leaseRemainingMs, validLeaseVotes, type Action, type View } from '../../src/cluster/decide.js';
import { NOW, T, peer, primaryView, silentPeer, standbyView } from '../helpers/views.js';

const kinds = (actions: Action[]) => actions.map((a) => a.kind);

interface Row {
  name: string;
  view: View;
  role: string;
  actions: string[];
  reason: RegExp;
  epoch?: number;
}

const rows: Row[] = [
  {
    name: 'healthy primary with renewed lease: no action',
    view: primaryView(),
    role: 'primary',
    actions: [],
    reason: /^no action: primary, lease renewed by 3 of 3 voters$/,
  },
  {
    name: 'primary: one heartbeat path down is not a failover',
    view: primaryView({ peer: peer({ paths: [{ url: 'http://p1', ageMs: 5000 }, { url: 'http://p2', ageMs: 40 }] }) }),
    role: 'primary',
    actions: [],
    reason: /^no action: primary/,
  },
  {
    name: 'primary keeps the role when only the witness blips (peer still renews)',
    view: primaryView({ leaseAcks: { b: NOW - 50, witness: NOW - 5000 } }),
    role: 'primary',
    actions: [],
    reason: /lease renewed by 2 of 3 voters/,
  },
  {
    name: 'primary keeps the role when the peer dies but the witness renews',
    view: primaryView({ peer: silentPeer(), leaseAcks: { b: NOW - 2000, witness: NOW - 80 } }),
    role: 'primary',
    actions: [],
    reason: /lease renewed by 2 of 3 voters/,
  },
  {
    name: 'primary that lost majority fences itself and releases the VIP first',
    view: primaryView({ peer: silentPeer(), leaseAcks: { b: NOW - 2000, witness: NOW - 2000 } }),
    role: 'fenced',
    actions: ['releaseVip', 'demote', 'emit'],
    reason: /^fence: lease lost, only 1 of 3 voters/,
  },
  {
    name: 'primary fences inside the safety margin, before the lease fully runs out',
    view: primaryView({ peer: silentPeer(), leaseAcks: { b: NOW - 2000, witness: NOW - 650 } }),
    role: 'fenced',
    actions: ['releaseVip', 'demote', 'emit'],
    reason: /^fence/,
  },
  {
    name: 'primary seeing a higher-epoch primary demotes at once',
    view: primaryView({ peer: peer({ role: 'primary', epoch: 6 }) }),
    role: 'standby',
    epoch: 6,
    actions: ['releaseVip', 'adoptEpoch', 'demote', 'emit'],
    reason: /^demote: peer b is primary at higher epoch 6/,
  },
  {
    name: 'primary told by the witness of a higher epoch fences',
    view: primaryView({ witnessEpoch: 7 }),
    role: 'fenced',
    actions: ['releaseVip', 'demote', 'emit'],
    reason: /witness granted higher epoch 7/,
  },
  {
    name: 'primary in maintenance: no action, keeps lease',
    view: primaryView({ maintenance: true }),
    role: 'primary',
    actions: [],
    reason: /^maintenance: primary, automation paused/,
  },
  {
    name: 'primary in maintenance still fences on lost majority',
    view: primaryView({ maintenance: true, peer: silentPeer(), leaseAcks: {} }),
    role: 'fenced',
    actions: ['releaseVip', 'demote', 'emit'],
    reason: /^fence/,
  },
  {
    name: 'primary without the VIP reconciles it',
    view: primaryView({ vipHeld: false }),
    role: 'primary',
    actions: ['acquireVip'],
    reason: /^no action: primary/,
  },
  {
    name: 'escalated primary hands over to a healthy standby',
    view: primaryView({ escalated: true }),
    role: 'standby',
    actions: ['emit', 'handover'],
    reason: /^escalation: .*handing over to healthy standby b/,
  },
  {
    name: 'escalated primary right after an aborted handover waits before trying again (no stop/start loop)',
    view: primaryView({ escalated: true, handoverAbortedAgoMs: 5000 }),
    role: 'primary',
    actions: [],
    reason: /^escalation pending: the last handover was aborted 5000 ms ago; retrying in 25000 ms/,
  },
  {
    name: 'escalated primary tries the handover again once the hold-off after an abort ran out',
    view: primaryView({ escalated: true, handoverAbortedAgoMs: 30_000 }),
    role: 'standby',
    actions: ['emit', 'handover'],
    reason: /^escalation: .*handing over to healthy standby b/,
  },
  {
    name: 'an operator switchover is not held back by an earlier aborted handover',
    view: primaryView({ handoverAbortedAgoMs: 1000, request: { id: 'r9', kind: 'switchover', to: 'b' } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^switchover: handing the primary role to b/,
  },
  {
    name: 'automatic fail-back is held back after an aborted handover',
    view: primaryView({ preferred: false, handoverAbortedAgoMs: 2000, autoFailback: { enabled: true, holdDownMs: 10_000, peerIsPreferred: true, peerReadyForMs: 60_000 } }),
    role: 'primary',
    actions: [],
    reason: /automatic fail-back to b held back for 28000 ms after an aborted handover/,
  },
  {
    name: 'escalated primary without a healthy standby keeps the role and keeps retrying',
    view: primaryView({ escalated: true, peer: peer({ healthy: false }) }),
    role: 'primary',
    actions: [],
    reason: /^escalation pending/,
  },
  {
    name: 'escalated primary does not hand over to a standby that is not caught up',
    view: primaryView({ escalated: true, peer: peer({ caughtUp: false }) }),
    role: 'primary',
    actions: [],
    reason: /^escalation pending: .*standby b is not fully caught up/,
  },
  {
    name: 'switchover request with a caught-up standby hands over',
    view: primaryView({ request: { id: 'r1', kind: 'switchover', to: 'b' } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^switchover: handing the primary role to b \(b\) at epoch 6$/,
  },
  {
    name: 'switchover with handoverDrainMs: stays primary and drains first (/primary answers 503 while it still serves)',
    view: primaryView({ timings: { ...T, handoverDrainMs: 1500 }, request: { id: 'r1', kind: 'switchover', to: 'b' } }),
    role: 'primary',
    actions: ['drain'],
    reason: /^switchover: handing the primary role to b \(b\) at epoch 6; first draining load balancers for 1500 ms/,
  },
  {
    name: 'draining: keeps the role, the lease and the VIP until the drain is over',
    view: primaryView({ timings: { ...T, handoverDrainMs: 1500 }, vipHeld: false, drain: { to: 'b', epoch: 6, requestId: 'r1', reason: 'switchover', untilMs: NOW + 400 } }),
    role: 'primary',
    actions: ['acquireVip'],
    reason: /^switchover to b: draining, \/primary answers 503 for 400 ms more while this node still serves$/,
  },
  {
    name: 'drain over: the handover starts at the epoch accepted',
    view: primaryView({ timings: { ...T, handoverDrainMs: 1500 }, drain: { to: 'b', epoch: 6, requestId: 'r1', reason: 'failback', untilMs: NOW } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^failback: drained; handing the primary role to b at epoch 6$/,
  },
  {
    name: 'draining, the successor dies: the drain is aborted, this node stays primary and says why',
    view: primaryView({ peer: silentPeer(900), drain: { to: 'b', epoch: 6, requestId: 'r1', reason: 'switchover', untilMs: NOW + 400 } }),
    role: 'primary',
    actions: ['endDrain', 'emit', 'completeRequest'],
    reason: /^switchover to b aborted while draining: peer b stopped answering; this node stays primary$/,
  },
  {
    name: 'draining, maintenance turned on: the drain is aborted',
    view: primaryView({ maintenance: true, drain: { to: 'b', epoch: 6, requestId: null, reason: 'failback', untilMs: NOW + 400 } }),
    role: 'primary',
    actions: ['endDrain', 'emit'],
    reason: /aborted while draining: maintenance mode was turned on/,
  },
  {
    name: 'draining, the lease lost: fences (the split-brain guards come first)',
    view: primaryView({ leaseAcks: {}, drain: { to: 'b', epoch: 6, requestId: 'r1', reason: 'switchover', untilMs: NOW + 400 } }),
    role: 'fenced',
    actions: ['releaseVip', 'demote', 'emit'],
    reason: /^fence: lease lost/,
  },
  {
    name: 'escalation with handoverDrainMs drains first too',
    view: primaryView({ escalated: true, timings: { ...T, handoverDrainMs: 1000 } }),
    role: 'primary',
    actions: ['emit', 'drain'],
    reason: /^escalation: .*; first draining load balancers for 1000 ms/,
  },
  {
    name: 'switchover refused while the standby lags',
    view: primaryView({ request: { id: 'r1', kind: 'switchover', to: null }, peer: peer({ caughtUp: false }) }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /^switchover refused: peer b is not fully caught up yet \(database, repository or files lag\)$/,
  },
  {
    name: 'a switchover refusal names the data paths that lag when they are known',
    view: primaryView({ request: { id: 'r1', kind: 'switchover', to: null }, peer: peer({ caughtUp: false, behind: ['repo', 'files'] }) }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /^switchover refused: peer b is not fully caught up yet \(behind on repo, files\)$/,
  },
  {
    name: 'switchover refused during the hold-down after this node became primary by a switchover',
    view: primaryView({ plannedMoveAgoMs: 300, request: { id: 'r1', kind: 'switchover', to: 'b' } }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /^switchover refused: hold-down: this node became primary by a planned move 0\.3 s ago; the next switchover or fail-back is allowed in 10 s/,
  },
  {
    name: 'fail-back refused during the hold-down too',
    view: primaryView({ preferred: false, plannedMoveAgoMs: 9_500, request: { id: 'r1', kind: 'failback' } }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /^failback refused: hold-down: .* allowed in 1 s/,
  },
  {
    name: 'switchover allowed once the hold-down has passed',
    view: primaryView({ plannedMoveAgoMs: 10_001, request: { id: 'r1', kind: 'switchover', to: 'b' } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^switchover: handing the primary role to b/,
  },
  {
    name: 'no hold-down when it is configured 0',
    view: primaryView({ plannedMoveAgoMs: 5, timings: { ...T, plannedHoldDownMs: 0 }, request: { id: 'r1', kind: 'switchover', to: 'b' } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^switchover: handing the primary role to b/,
  },
  {
    name: 'switchover to an unknown node refused',
    view: primaryView({ request: { id: 'r1', kind: 'switchover', to: 'zz' } }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /unknown node zz/,
  },
  {
    name: 'failback refused on the preferred node itself',
    view: primaryView({ request: { id: 'r1', kind: 'failback' } }),
    role: 'primary',
    actions: ['completeRequest'],
    reason: /already the preferred primary/,
  },
  {
    name: 'failback from the acting primary hands back to the caught-up preferred node',
    view: primaryView({ preferred: false, request: { id: 'r1', kind: 'failback' } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^failback: handing the primary role to the preferred node/,
  },
  {
    name: 'automatic fail-back waits for the hold-down',
    view: primaryView({ preferred: false, autoFailback: { enabled: true, holdDownMs: 10_000, peerIsPreferred: true, peerReadyForMs: 4000 } }),
    role: 'primary',
    actions: [],
    reason: /automatic fail-back to b in 6000 ms/,
  },
  {
    name: 'automatic fail-back hands over once the preferred node was ready for the hold-down',
    view: primaryView({ preferred: false, autoFailback: { enabled: true, holdDownMs: 10_000, peerIsPreferred: true, peerReadyForMs: 10_000 } }),
    role: 'standby',
    actions: ['handover'],
    reason: /^automatic fail-back: preferred node b healthy and caught up/,
  },
  {
    name: 'automatic fail-back off: the acting primary stays (no preemption)',
    view: primaryView({ preferred: false, autoFailback: { enabled: false, holdDownMs: 0, peerIsPreferred: true, peerReadyForMs: 99_999 } }),
    role: 'primary',
    actions: [],
    reason: /^no action: primary/,
  },
  {
    name: 'handover offered: wait for the successor within the timeout',
    view: standbyView({ peer: peer({ role: 'standby' }), handover: { to: 'b', epoch: 6, startedAt: NOW - 29_000, ready: true } }),
    role: 'standby',
    actions: [],
    reason: /^handover: waiting for b to become primary at epoch 6/,
  },
  {
    name: 'handover offered and not taken within the timeout: abandoned, the cluster elects again',
    view: standbyView({ peer: peer({ role: 'standby' }), handover: { to: 'b', epoch: 6, startedAt: NOW - 30_001, ready: true } }),
    role: 'standby',
    actions: ['abandonHandover', 'emit'],
    reason: /^handover to b timed out; the cluster elects again/,
  },
  {
    name: 'handover still handing data over: not abandoned however long the data paths take',
    view: standbyView({ peer: peer({ role: 'standby' }), handover: { to: 'b', epoch: 6, startedAt: NOW - 90_000, ready: false } }),
    role: 'standby',
    actions: [],
    reason: /^handover: waiting for b/,
  },
  {
    name: 'standby following a live primary: no action',
    view: standbyView(),
    role: 'standby',
    actions: [],
    reason: /^no action: standby of b, primary at epoch 5$/,
  },
  {
    name: 'standby adopts a higher epoch from the primary',
    view: standbyView({ peer: peer({ role: 'primary', epoch: 9 }) }),
    role: 'standby',
    epoch: 9,
    actions: ['adoptEpoch'],
    reason: /primary at epoch 9/,
  },
  {
    name: 'standby: one path down is not a failover',
    view: standbyView({ peer: peer({ role: 'primary', paths: [{ url: 'http://p1', ageMs: 9000 }, { url: 'http://p2', ageMs: 30 }] }) }),
    role: 'standby',
    actions: [],
    reason: /^no action: standby of b/,
  },
  {
    name: 'standby: peer silent but its lease may still run: wait',
    view: standbyView({ peer: silentPeer(520, { role: 'primary' }), promiseUntil: NOW + 180 }),
    role: 'standby',
    actions: [],
    reason: /silent on all paths; waiting 180 ms for its lease to run out/,
  },
  {
    name: 'standby: all paths silent and lease expired: campaign for epoch+1',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: NOW - 1 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /asking for epoch 6$/,
  },
  {
    name: 'standby that voted for the old primary at an epoch it never saw used asks for the next one',
    view: standbyView({ epoch: 0, votedFor: { epoch: 1, node: 'b' }, peer: silentPeer(900, { role: 'standby', epoch: 0 }), promiseUntil: 0 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /asking for epoch 2$/,
  },
  {
    name: 'standby: campaign paced by the heartbeat interval',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: NOW - 1, lastCampaignAt: NOW - 20 }),
    role: 'standby',
    actions: [],
    reason: /next election attempt after 100 ms/,
  },
  {
    name: 'standby: a refused campaign is retried when the witness said the old lease runs out',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0, lastCampaignAt: NOW - 20, campaignRetryAt: NOW }),
    role: 'standby',
    actions: ['campaign'],
    reason: /asking for epoch 6$/,
  },
  {
    name: 'standby: not before that moment',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0, lastCampaignAt: NOW - 20, campaignRetryAt: NOW + 30 }),
    role: 'standby',
    actions: [],
    reason: /next election attempt when the witness said it could be granted$/,
  },
  {
    name: 'standby: a retry moment later than the heartbeat pacing does not delay the paced attempt',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0, lastCampaignAt: NOW - 100, campaignRetryAt: NOW + 500 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /asking for epoch 6$/,
  },
  {
    name: 'standby: election granted by the witness: promote',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0, election: { epoch: 6, granted: ['witness'], refused: ['b'] } }),
    role: 'primary',
    epoch: 6,
    actions: ['promote'],
    reason: /^promote: epoch 6 granted by self \+ witness \(majority 2 of 3\)$/,
  },
  {
    name: 'standby: election refused: no promotion',
    view: standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0, election: { epoch: 6, granted: [], refused: ['witness'] }, lastCampaignAt: NOW - 10 }),
    role: 'standby',
    actions: [],
    reason: /next election attempt/,
  },
  {
    name: 'standby with unhealthy services never promotes',
    view: standbyView({ healthy: false, peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0 }),
    role: 'standby',
    actions: [],
    reason: /^no promotion: local services are unhealthy$/,
  },
  {
    name: 'standby in maintenance does not promote',
    view: standbyView({ maintenance: true, peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0 }),
    role: 'maintenance',
    actions: ['setRole'],
    reason: /^maintenance: automation paused, no promotion$/,
  },
  {
    name: 'standby offered a takeover campaigns at once',
    view: standbyView({ peer: peer({ role: 'standby', takeoverOffer: 6 }), promiseUntil: 0 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /^takeover offered by b: asking for epoch 6$/,
  },
  {
    name: 'standby whose peer is alive but speaks an incompatible protocol does not campaign (it is not dead)',
    view: standbyView({ peer: peer({ role: null, incompatible: 'the peer speaks protocol 3' }), promiseUntil: 0, preferred: true }),
    role: 'standby',
    actions: [],
    reason: /^peer b is alive but incompatible \(the peer speaks protocol 3\); not campaigning$/,
  },
  {
    name: 'standby whose incompatible peer then falls silent campaigns once its lease is out (dead, not incompatible)',
    view: standbyView({ peer: silentPeer(900, { role: 'primary', incompatible: 'the peer speaks protocol 3' }), promiseUntil: 0 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /silent on all paths/,
  },
  {
    name: 'bootstrap: the non-preferred node waits for a peer it never heard before campaigning',
    view: standbyView({ epoch: 0, preferred: false, uptimeMs: 1000, peer: silentPeer(0, { lastSeenAgeMs: null, paths: [{ url: 'x', ageMs: null }] }), promiseUntil: 0 }),
    role: 'standby',
    actions: [],
    reason: /not heard since start; waiting 4600 ms for the preferred node/,
  },
  {
    name: 'bootstrap: after the grace the non-preferred node takes the role of a peer that never came',
    view: standbyView({ epoch: 0, preferred: false, uptimeMs: 6000, peer: silentPeer(0, { lastSeenAgeMs: null, paths: [{ url: 'x', ageMs: null }] }), promiseUntil: 0 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /asking for epoch 1/,
  },
  {
    name: 'bootstrap: no primary, this node preferred: campaign',
    view: standbyView({ epoch: 0, preferred: true, peer: peer({ role: 'standby', epoch: 0 }), promiseUntil: 0, noPrimaryForMs: 600 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /no primary in the cluster and this node is preferred: asking for epoch 1/,
  },
  {
    name: 'bootstrap: no primary, peer preferred and healthy: wait for it',
    view: standbyView({ epoch: 0, preferred: false, peer: peer({ role: 'standby', epoch: 0 }), promiseUntil: 0, noPrimaryForMs: 600 }),
    role: 'standby',
    actions: [],
    reason: /leaving the first election to preferred node b/,
  },
  {
    name: 'no primary for long although the preferred peer is up: campaign anyway',
    view: standbyView({ epoch: 3, preferred: false, peer: peer({ role: 'standby', epoch: 3 }), promiseUntil: 0, noPrimaryForMs: 6000 }),
    role: 'standby',
    actions: ['campaign'],
    reason: /no primary for 6000 ms/,
  },
  {
    name: 'fenced node seeing the new primary rejoins as standby',
    view: standbyView({ role: 'fenced', epoch: 5, peer: peer({ role: 'primary', epoch: 6 }) }),
    role: 'standby',
    epoch: 6,
    actions: ['adoptEpoch', 'demote', 'emit', 'setRole'],
    reason: /standby of b, primary at epoch 6/,
  },
  {
    name: 'fenced node releases a VIP it still holds',
    view: standbyView({ role: 'fenced', vipHeld: true, peer: silentPeer(900), promiseUntil: NOW + 100 }),
    role: 'fenced',
    actions: ['releaseVip'],
    reason: /waiting 100 ms/,
  },
  {
    name: 'starting: waits for a first answer',
    view: standbyView({ role: 'starting', uptimeMs: 100, peer: silentPeer(0, { lastSeenAgeMs: null, paths: [{ url: 'x', ageMs: null }] }) }),
    role: 'starting',
    actions: [],
    reason: /^starting: waiting/,
  },
  {
    name: 'starting next to a live primary: standby (no preemption even if preferred)',
    view: standbyView({ role: 'starting', preferred: true, epoch: 4, peer: peer({ role: 'primary', epoch: 6 }) }),
    role: 'standby',
    epoch: 6,
    actions: ['adoptEpoch', 'setRole'],
    reason: /^started as standby: peer b answers as primary at epoch 6$/,
  },
  {
    name: 'a request sent to a standby is refused with the reason',
    view: standbyView({ request: { id: 'r9', kind: 'switchover', to: null } }),
    role: 'standby',
    actions: ['completeRequest'],
    reason: /^no action: standby/,
  },
];

describe('decide()', () => {
  it.each(rows)('$name', (row) => {
    const d = decide(row.view);
    expect(d.nextRole).toBe(row.role);
    expect(kinds(d.actions)).toEqual(row.actions);
    expect(d.reason).toMatch(row.reason);
    if (row.epoch !== undefined) expect(d.epoch).toBe(row.epoch);
  });

  it('is pure: the same view gives the same decision and the view is not modified', () => {
    const v = standbyView({ peer: silentPeer(900, { role: 'primary' }), promiseUntil: 0 });
    const copy = structuredClone(v);
    expect(decide(v)).toEqual(decide(v));
    expect(v).toEqual(copy);
  });

  it('never returns promote without a majority', () => {
    for (let granted = 0; granted <= 2; granted++) {
      const names = ['witness', 'b'].slice(0, granted);
      for (const majority of [2, 3]) {
        const d = decide(standbyView({ peer: silentPeer(900), promiseUntil: 0, majority, election: { epoch: 6, granted: names, refused: [] } }));
        const promotes = d.actions.some((a) => a.kind === 'promote');
        expect(promotes).toBe(granted + 1 >= majority);
      }
    }
  });

  it('a primary always fences before a standby of the same lease could promote', () => {
    // Witness counts the lease from when it answered (>= send time); the primary counts from send time
    // minus a margin, so at the instant the witness would grant a new epoch the primary has fenced.
    for (let age = 0; age <= 1000; age += 10) {
      const v = primaryView({ peer: silentPeer(), leaseAcks: { witness: NOW - age } });
      const fenced = decide(v).nextRole === 'fenced';
      const witnessWouldGrant = age >= T.leaseMs;
      if (witnessWouldGrant) expect(fenced).toBe(true);
    }
  });
});

describe('lease arithmetic', () => {
  it('counts self plus fresh acks', () => {
    expect(validLeaseVotes({ now: NOW, timings: T, leaseAcks: { b: NOW - 100, witness: NOW - 900 } })).toBe(2);
    expect(validLeaseVotes({ now: NOW, timings: T, leaseAcks: {} })).toBe(1);
  });
  it('remaining lease is set by the (majority-1)th freshest ack', () => {
    const r = leaseRemainingMs({ now: NOW, timings: T, majority: 2, leaseAcks: { b: NOW - 100, witness: NOW - 300 } });
    expect(r).toBeGreaterThan(0);
    expect(r).toBeLessThan(T.leaseMs - 100);
    expect(leaseRemainingMs({ now: NOW, timings: T, majority: 2, leaseAcks: {} })).toBe(0);
  });
});

describe('decideVote()', () => {
  const base = { now: NOW, node: 'b', role: 'standby' as const, epoch: 5, votedFor: null, promise: null, handoverTo: null };
  it.each([
    { name: 'grants a higher epoch when no primary is live', s: base, epoch: 6, granted: true, reason: /no live primary/ },
    { name: 'refuses a stale epoch', s: base, epoch: 5, granted: false, reason: /not above ours/ },
    { name: 'refuses a second candidate in the same epoch', s: { ...base, votedFor: { epoch: 6, node: 'c' } }, epoch: 6, granted: false, reason: /already voted for c/ },
    { name: 'grants the same candidate again (retry)', s: { ...base, votedFor: { epoch: 6, node: 'a' } }, epoch: 6, granted: true, reason: /no live primary/ },
    { name: 'a primary refuses', s: { ...base, role: 'primary' as const }, epoch: 6, granted: false, reason: /is primary/ },
    { name: 'a primary handing over grants its successor', s: { ...base, role: 'standby' as const, handoverTo: 'a' }, epoch: 6, granted: true, reason: /handing over to a/ },
    // Before its data is on the successor (WAL up to the shutdown checkpoint, last images) nobody gets the
    // role: not the successor, and not anyone else who sees no primary in the meantime.
    { name: 'a node still handing its data over refuses its successor', s: { ...base, role: 'standby' as const, handoverPending: true }, epoch: 6, granted: false, reason: /data is not on the standby yet/ },
    { name: 'a node still handing its data over refuses anyone', s: { ...base, role: 'standby' as const, handoverPending: true, votedFor: { epoch: 6, node: 'a' } }, epoch: 6, granted: false, reason: /data is not on the standby yet/ },
    { name: 'refuses while promised to another live primary', s: { ...base, promise: { node: 'c', until: NOW + 100 } }, epoch: 6, granted: false, reason: /primary c was heard/ },
  ])('$name', ({ s, epoch, granted, reason }) => {
    const r = decideVote(s, 'a', epoch);
    expect(r.granted).toBe(granted);
    expect(r.reason).toMatch(reason);
  });
});
