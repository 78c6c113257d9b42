import { describe, expect, it } from 'vitest';
import { campaignKind } from '../../src/cluster/agent/election.js';

type Prev = Parameters<typeof campaignKind>[0];
type Now = Parameters<typeof campaignKind>[1];
const now = (o: Partial<Now> = {}): Now => ({ epoch: 4, offer: null, firstPrimary: false, peerAlive: false, ...o });

describe('campaignKind: the label and start of a takeover timing', () => {
  const cases: [string, Prev, Now, ReturnType<typeof campaignKind>][] = [
    ['first campaign, peer dead', null, now(), 'failover'],
    ['first campaign, peer alive (unhealthy primary)', null, now({ peerAlive: true }), 'recovery'],
    ['first primary of the cluster', null, now({ firstPrimary: true, epoch: 0 }), 'bootstrap'],
    ['a switchover offer', null, now({ offer: 'switchover', peerAlive: true }), 'switchover'],
    ['a fail-back offer', null, now({ offer: 'failback', peerAlive: true }), 'failback'],
    ['retry of the same failover keeps its timing', { kind: 'failover', epochBefore: 4 }, now(), null],
    ['retry of the same switchover keeps its timing', { kind: 'switchover', epochBefore: 4 }, now({ offer: 'switchover', peerAlive: true }), null],
    ['a timing from an older epoch is replaced', { kind: 'failover', epochBefore: 3 }, now(), 'failover'],
    ['a bootstrap that is not the first primary after all', { kind: 'bootstrap', epochBefore: 4 }, now(), 'failover'],
    ['an offer after a refused recovery at the same epoch relabels it', { kind: 'recovery', epochBefore: 4 }, now({ offer: 'switchover', peerAlive: true }), 'switchover'],
    ['a fail-back offer after a refused failover at the same epoch relabels it', { kind: 'failover', epochBefore: 4 }, now({ offer: 'failback', peerAlive: true }), 'failback'],
    ['no offer: an earlier recovery timing at the same epoch is kept', { kind: 'recovery', epochBefore: 4 }, now({ peerAlive: false }), null],
  ];
  it.each(cases)('%s', (_name, prev, n, want) => {
    expect(campaignKind(prev, n)).toBe(want);
  });
});
