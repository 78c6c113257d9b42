import type { PeerView, View } from '../../src/cluster/decide.js';

export const T = { heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700, handoverTimeoutMs: 30_000, plannedHoldDownMs: 10_000, handoverDrainMs: 0 };
export const NOW = 100_000;

/** A live, healthy standby peer. */
export function peer(over: Partial<PeerView> = {}): PeerView {
  return {
    node: 'b',
    alive: true,
    paths: [
      { url: 'http://p1', ageMs: 50 },
      { url: 'http://p2', ageMs: 60 },
    ],
    role: 'standby',
    epoch: 5,
    healthy: true,
    caughtUp: true,
    lastSeenAgeMs: 50,
    takeoverOffer: null,
    holder: false,
    ...over,
  };
}

/** The peer silent on every path for `ageMs`. */
export function silentPeer(ageMs = 900, over: Partial<PeerView> = {}): PeerView {
  return peer({
    alive: false,
    paths: [
      { url: 'http://p1', ageMs },
      { url: 'http://p2', ageMs },
    ],
    lastSeenAgeMs: ageMs,
    ...over,
  });
}

/** A healthy primary at epoch 5 whose lease was just renewed by peer and witness. */
export function primaryView(over: Partial<View> = {}): View {
  return {
    now: NOW,
    node: 'a',
    role: 'primary',
    epoch: 5,
    maintenance: false,
    healthy: true,
    escalated: false,
    preferred: true,
    uptimeMs: 60_000,
    peer: peer(),
    voters: 3,
    majority: 2,
    leaseAcks: { b: NOW - 100, witness: NOW - 100 },
    promiseUntil: 0,
    witnessEpoch: null,
    votedFor: null,
    election: null,
    lastCampaignAt: null,
    campaignRetryAt: null,
    handover: null,
    drain: null,
    request: null,
    vipHeld: true,
    noPrimaryForMs: 0,
    handoverAbortedAgoMs: null,
    plannedMoveAgoMs: null,
    holderRecord: { kept: false, holders: null },
    autoFailback: { enabled: false, holdDownMs: 300_000, peerIsPreferred: false, peerReadyForMs: 0 },
    timings: T,
    ...over,
  };
}

/** A healthy standby at epoch 5 following primary `b`. */
export function standbyView(over: Partial<View> = {}): View {
  return primaryView({
    node: 'a',
    role: 'standby',
    preferred: false,
    leaseAcks: {},
    vipHeld: false,
    peer: peer({ role: 'primary' }),
    promiseUntil: NOW + 600,
    noPrimaryForMs: 0,
    ...over,
  });
}
