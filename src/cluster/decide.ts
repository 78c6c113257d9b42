/**
 * decide(): the whole HA decision as a pure function of a read-only view. No I/O, no clock: time comes
 * in as `view.now` (monotonic ms). The agent loop gathers the view, calls decide() and executes the
 * returned actions through ports.
 */
import type { Role } from '../ports.js';
import { assertNever } from '../ports.js';

export interface PathView {
  url: string;
  /** ms since the last successful round trip on this path, or null if never. */
  ageMs: number | null;
}

export interface PeerView {
  node: string;
  /** Any path answered within deadAfterMs. */
  alive: boolean;
  paths: PathView[];
  /** Last state the peer reported (null if never heard). */
  role: Role | null;
  epoch: number;
  healthy: boolean;
  /** Peer reports it is fully caught up on every data path (for switchover and fail-back). */
  caughtUp: boolean;
  /** ms since the peer was last heard on any path (null if never). */
  lastSeenAgeMs: number | null;
  /** The peer asked us to take over (graceful handover) at this epoch. */
  takeoverOffer: number | null;
}

export type AdminRequest =
  | { id: string; kind: 'switchover'; to: string | null }
  | { id: string; kind: 'failback' };

export interface ElectionView {
  epoch: number;
  granted: string[];
  refused: string[];
}

export interface View {
  now: number;
  node: string;
  role: Role;
  /** Highest epoch this node has persisted. */
  epoch: number;
  /** Role held before maintenance (maintenance pauses automation but keeps the underlying role). */
  maintenance: boolean;
  /** All local services healthy. */
  healthy: boolean;
  /** The monitor gave up restarting a service and asks for a handover. */
  escalated: boolean;
  /** This node is the preferred primary (bootstrap, fail-back target). */
  preferred: boolean;
  /** ms since the agent started (startup grace). */
  uptimeMs: number;
  peer: PeerView | null;
  /** Number of voters (self + peers + witness) and the majority needed. */
  voters: number;
  majority: number;
  /** Per voter (peer name or "witness"): send time (monotonic) of its last granted lease renewal. */
  leaseAcks: Record<string, number>;
  /** Until when (monotonic) this node has promised the current primary not to vote for anyone else. */
  promiseUntil: number;
  /** The vote this node cast last (persisted): it may not ask for that epoch for itself. */
  votedFor: { epoch: number; node: string } | null;
  /** Epoch reported by the witness when it is higher than ours (someone else was granted it). */
  witnessEpoch: number | null;
  /** Result of the last election this node ran. */
  election: ElectionView | null;
  /** When the last campaign was started (monotonic), to pace retries. */
  lastCampaignAt: number | null;
  /**
   * When a refused election may be retried before the heartbeat pacing allows (monotonic): the moment
   * the witness said the holder's lease runs out, or at once when it refused an epoch it had already
   * passed (the retry asks for a higher one). Null when the last refusal named no such moment.
   */
  campaignRetryAt: number | null;
  /**
   * A graceful handover this node started and that has not finished. `ready` once its data paths have
   * handed everything over (writes fenced, the standby caught up): only then is the role offered.
   * `startedAt` is the moment of the offer once ready (the handover timeout counts from there).
   */
  handover: { to: string; epoch: number; startedAt: number; ready: boolean } | null;
  request: AdminRequest | null;
  vipHeld: boolean;
  /** Automatic fail-back to the preferred peer (keepalived's preempt_delay), off by default. */
  autoFailback: { enabled: boolean; holdDownMs: number; peerIsPreferred: boolean; peerReadyForMs: number };
  /** ms since this node last knew of a live primary (or since start). */
  noPrimaryForMs: number;
  /** ms since a handover this node started was aborted by a data path (null: none since start). */
  handoverAbortedAgoMs: number | null;
  timings: { heartbeatMs: number; deadAfterMs: number; leaseMs: number; handoverTimeoutMs: number };
}

export type Action =
  | { kind: 'adoptEpoch'; epoch: number }
  | { kind: 'campaign'; epoch: number }
  | { kind: 'promote'; epoch: number }
  | { kind: 'demote'; to: 'standby' | 'fenced'; rejoin: boolean }
  | { kind: 'acquireVip' }
  | { kind: 'releaseVip' }
  | { kind: 'handover'; to: string; epoch: number; requestId: string | null; reason: 'switchover' | 'failback' | 'escalation' }
  | { kind: 'abandonHandover' }
  | { kind: 'completeRequest'; id: string; ok: boolean; message: string }
  | { kind: 'setRole'; role: Role }
  | { kind: 'emit'; type: string; severity: 'info' | 'warning' | 'critical'; message: string; details?: Record<string, unknown> };

export interface Decision {
  nextRole: Role;
  epoch: number;
  actions: Action[];
  /** One human sentence: what was decided and why. */
  reason: string;
}

/** Fraction of the lease kept as safety margin: a primary fences this long before its lease runs out. */
export function leaseMarginMs(t: { leaseMs: number; heartbeatMs: number }): number {
  return Math.max(Math.floor(t.leaseMs / 7), Math.min(t.heartbeatMs, Math.floor(t.leaseMs / 4)));
}

/** How long a non-preferred node that never heard its peer waits at start before campaigning. */
export function bootGraceMs(t: { leaseMs: number }): number {
  return 8 * t.leaseMs;
}

/** Votes for the current primary lease that are still valid at `now` (self included). */
export function validLeaseVotes(v: Pick<View, 'now' | 'leaseAcks' | 'timings'>): number {
  const margin = leaseMarginMs(v.timings);
  let n = 1;
  for (const sentAt of Object.values(v.leaseAcks)) if (sentAt + v.timings.leaseMs - margin > v.now) n++;
  return n;
}

/** Time left on the primary's lease (ms), 0 when lost. */
export function leaseRemainingMs(v: Pick<View, 'now' | 'leaseAcks' | 'timings' | 'majority'>): number {
  const margin = leaseMarginMs(v.timings);
  const ends = Object.values(v.leaseAcks)
    .map((s) => s + v.timings.leaseMs - margin)
    .sort((a, b) => b - a);
  // Self always votes: the lease holds while (majority - 1) other voters' acks hold.
  const need = v.majority - 1;
  if (need <= 0) return Number.POSITIVE_INFINITY;
  const end = ends[need - 1];
  return end === undefined ? 0 : Math.max(0, end - v.now);
}

const keep = (v: View, reason: string, actions: Action[] = []): Decision => ({ nextRole: v.role, epoch: v.epoch, actions, reason });

/**
 * After a handover was aborted (a data path could not hand its data over; the database was started
 * again), automatic handovers (escalation, automatic fail-back) wait this long before they try again:
 * the peer may still look caught up for a while, and each attempt stops writes for a moment. An
 * operator's request is not held back.
 */
export const AUTO_HANDOVER_RETRY_MS = 30_000;

/** ms until an automatic handover may run again after an aborted one (0: now). */
function autoHandoverHoldMs(v: View): number {
  return v.handoverAbortedAgoMs === null ? 0 : Math.max(0, AUTO_HANDOVER_RETRY_MS - v.handoverAbortedAgoMs);
}

export function decide(v: View): Decision {
  switch (v.role) {
    case 'starting':
      return decideStarting(v);
    case 'primary':
      return decidePrimary(v);
    case 'standby':
    case 'fenced':
    case 'maintenance':
      return decideNonPrimary(v);
    default:
      return assertNever(v.role, 'role');
  }
}

function decideStarting(v: View): Decision {
  const p = v.peer;
  if (p?.alive || v.uptimeMs >= v.timings.deadAfterMs || !p) {
    const actions: Action[] = [];
    if (p?.alive && p.role === 'primary' && p.epoch > v.epoch) actions.push({ kind: 'adoptEpoch', epoch: p.epoch });
    if (v.vipHeld) actions.push({ kind: 'releaseVip' });
    actions.push({ kind: 'setRole', role: 'standby' });
    return {
      nextRole: 'standby',
      epoch: Math.max(v.epoch, p?.alive && p.role === 'primary' ? p.epoch : 0),
      actions,
      reason: p?.alive
        ? `started as standby: peer ${p.node} answers as ${p.role ?? 'unknown'} at epoch ${p.epoch}`
        : `started as standby: no answer from the peer within ${v.timings.deadAfterMs} ms`,
    };
  }
  return keep(v, 'starting: waiting for the first heartbeat answer before choosing a role');
}

/** Stop being primary at once: the VIP goes first, then writes stop; the event says why. */
function fence(v: View, message: string, reason: string, details: Record<string, unknown>): Decision {
  return {
    nextRole: 'fenced',
    epoch: v.epoch,
    actions: [
      { kind: 'releaseVip' },
      { kind: 'demote', to: 'fenced', rejoin: false },
      { kind: 'emit', type: 'fenced', severity: 'critical', message, details },
    ],
    reason,
  };
}

function decidePrimary(v: View): Decision {
  const p = v.peer;
  // Split-brain guards come first, in maintenance too: a higher epoch wins, a lost majority fences.
  if (p?.alive && p.role === 'primary' && p.epoch > v.epoch) {
    return {
      nextRole: 'standby',
      epoch: p.epoch,
      actions: [
        { kind: 'releaseVip' },
        { kind: 'adoptEpoch', epoch: p.epoch },
        { kind: 'demote', to: 'standby', rejoin: true },
        { kind: 'emit', type: 'demoted', severity: 'critical', message: `demoted: peer ${p.node} is primary at higher epoch ${p.epoch} (ours ${v.epoch})`, details: { peerEpoch: p.epoch } },
      ],
      reason: `demote: peer ${p.node} is primary at higher epoch ${p.epoch}`,
    };
  }
  if (v.witnessEpoch !== null && v.witnessEpoch > v.epoch) {
    return fence(
      v,
      `fenced: the witness granted higher epoch ${v.witnessEpoch} (ours ${v.epoch})`,
      `fence: the witness granted higher epoch ${v.witnessEpoch} to another node`,
      { witnessEpoch: v.witnessEpoch },
    );
  }
  const votes = validLeaseVotes(v);
  if (votes < v.majority) {
    return fence(
      v,
      `fenced: lease not renewed by a majority (${votes} of ${v.voters} votes, need ${v.majority})`,
      `fence: lease lost, only ${votes} of ${v.voters} voters renewed it within ${v.timings.leaseMs} ms`,
      { votes, voters: v.voters },
    );
  }
  if (v.maintenance) {
    const actions: Action[] = v.vipHeld ? [] : [{ kind: 'acquireVip' }];
    if (v.request) actions.push({ kind: 'completeRequest', id: v.request.id, ok: false, message: 'refused: maintenance mode is on (turn it off first)' });
    return keep(v, `maintenance: primary, automation paused, lease held by ${votes} of ${v.voters} voters`, actions);
  }
  const reconcile: Action[] = v.vipHeld ? [] : [{ kind: 'acquireVip' }];
  const peerReady = !!p && p.alive && p.healthy && (p.role === 'standby');

  if (v.request) {
    const r = v.request;
    const target = r.kind === 'failback' ? 'the preferred node' : r.to ?? p?.node ?? 'the peer';
    const refusal = (msg: string): Decision =>
      keep(v, `${r.kind} refused: ${msg}`, [...reconcile, { kind: 'completeRequest', id: r.id, ok: false, message: `${r.kind} refused: ${msg}` }]);
    if (!p) return refusal('no peer is configured');
    if (r.kind === 'switchover' && r.to && r.to !== p.node) return refusal(`unknown node ${r.to} (expected ${p.node})`);
    if (r.kind === 'failback' && v.preferred) return refusal('this node is already the preferred primary');
    if (!p.alive) return refusal(`peer ${p.node} is not answering heartbeats`);
    if (!p.healthy) return refusal(`peer ${p.node} reports unhealthy services`);
    if (p.role !== 'standby') return refusal(`peer ${p.node} is ${p.role ?? 'unknown'}, not a standby`);
    if (!p.caughtUp) return refusal(`peer ${p.node} is not fully caught up yet (database, repository or files lag)`);
    return {
      nextRole: 'standby',
      epoch: v.epoch,
      actions: [{ kind: 'handover', to: p.node, epoch: v.epoch + 1, requestId: r.id, reason: r.kind }],
      reason: `${r.kind}: handing the primary role to ${target} (${p.node}) at epoch ${v.epoch + 1}`,
    };
  }
  const hold = autoHandoverHoldMs(v);
  if (v.escalated) {
    if (peerReady && p && p.caughtUp) {
      if (hold > 0) {
        return keep(v, `escalation pending: the last handover was aborted ${Math.round(v.handoverAbortedAgoMs ?? 0)} ms ago; retrying in ${Math.ceil(hold)} ms`, reconcile);
      }
      return {
        nextRole: 'standby',
        epoch: v.epoch,
        actions: [
          { kind: 'emit', type: 'escalation_handover', severity: 'critical', message: `local services failed beyond their restart budget: handing over to ${p.node}` },
          { kind: 'handover', to: p.node, epoch: v.epoch + 1, requestId: null, reason: 'escalation' },
        ],
        reason: `escalation: local services failed beyond their restart budget, handing over to healthy standby ${p.node}`,
      };
    }
    const why = peerReady && p ? `standby ${p.node} is not fully caught up` : 'no healthy standby to hand over to';
    return keep(v, `escalation pending: local services failing but ${why}; keep retrying`, reconcile);
  }
  const af = v.autoFailback;
  if (af.enabled && !v.preferred && af.peerIsPreferred && peerReady && p?.caughtUp) {
    if (af.peerReadyForMs >= af.holdDownMs) {
      if (hold > 0) {
        return keep(v, `no action: primary; automatic fail-back to ${p.node} held back for ${Math.ceil(hold)} ms after an aborted handover`, reconcile);
      }
      return {
        nextRole: 'standby',
        epoch: v.epoch,
        actions: [{ kind: 'handover', to: p.node, epoch: v.epoch + 1, requestId: null, reason: 'failback' }],
        reason: `automatic fail-back: preferred node ${p.node} healthy and caught up for ${Math.round(af.peerReadyForMs)} ms`,
      };
    }
    return keep(v, `no action: primary; automatic fail-back to ${p.node} in ${Math.ceil(af.holdDownMs - af.peerReadyForMs)} ms if it stays healthy and caught up`, reconcile);
  }
  return keep(v, `no action: primary, lease renewed by ${votes} of ${v.voters} voters`, reconcile);
}

function decideNonPrimary(v: View): Decision {
  const p = v.peer;
  const actions: Action[] = [];
  if (v.vipHeld) actions.push({ kind: 'releaseVip' });
  if (v.request) {
    actions.push({ kind: 'completeRequest', id: v.request.id, ok: false, message: `${v.request.kind} refused: send it to the primary (this node is ${v.role})` });
  }
  // A node that paused automation stays put (its VIP was released above if it is not primary).
  const baseRole: Role = v.role === 'fenced' ? 'fenced' : 'standby';
  const target: Role = v.maintenance ? 'maintenance' : baseRole;

  if (p?.alive && p.role === 'primary' && p.epoch >= v.epoch) {
    if (p.epoch > v.epoch) actions.push({ kind: 'adoptEpoch', epoch: p.epoch });
    if (v.role === 'fenced') {
      actions.push({ kind: 'demote', to: 'standby', rejoin: true });
      actions.push({ kind: 'emit', type: 'rejoined', severity: 'warning', message: `rejoined as standby of ${p.node} (epoch ${p.epoch})` });
    }
    if (v.handover) actions.push({ kind: 'abandonHandover' });
    const next: Role = v.maintenance ? 'maintenance' : 'standby';
    if (next !== v.role) actions.push({ kind: 'setRole', role: next });
    return { nextRole: next, epoch: p.epoch, actions, reason: `no action: standby of ${p.node}, primary at epoch ${p.epoch}` };
  }
  if (v.maintenance) {
    if (v.role !== 'maintenance') actions.push({ kind: 'setRole', role: 'maintenance' });
    return { nextRole: 'maintenance', epoch: v.epoch, actions, reason: 'maintenance: automation paused, no promotion' };
  }
  if (target !== v.role) actions.push({ kind: 'setRole', role: target });

  // A handover we started: wait for the peer to take the role, give up after the timeout (counted
  // from the offer; while the data paths still hand over, their own bounds apply).
  if (v.handover) {
    if (v.handover.ready && v.now - v.handover.startedAt > v.timings.handoverTimeoutMs) {
      actions.push({ kind: 'abandonHandover' });
      actions.push({ kind: 'emit', type: 'handover_failed', severity: 'critical', message: `handover to ${v.handover.to} did not complete within ${v.timings.handoverTimeoutMs} ms` });
      return { nextRole: target, epoch: v.epoch, actions, reason: `handover to ${v.handover.to} timed out; the cluster elects again` };
    }
    return { nextRole: target, epoch: v.epoch, actions, reason: `handover: waiting for ${v.handover.to} to become primary at epoch ${v.handover.epoch}` };
  }

  // An election we ran has a majority: take the role.
  const e = v.election;
  if (e && e.epoch > v.epoch && e.granted.length + 1 >= v.majority && e.granted.length >= 0) {
    if (!v.healthy) {
      return { nextRole: target, epoch: v.epoch, actions, reason: `not promoting at epoch ${e.epoch}: local services are unhealthy` };
    }
    actions.push({ kind: 'promote', epoch: e.epoch });
    return {
      nextRole: 'primary',
      epoch: e.epoch,
      actions,
      reason: `promote: epoch ${e.epoch} granted by ${['self', ...e.granted].join(' + ')} (majority ${v.majority} of ${v.voters})`,
    };
  }

  const campaignDue =
    v.lastCampaignAt === null || v.now - v.lastCampaignAt >= v.timings.heartbeatMs || (v.campaignRetryAt !== null && v.now >= v.campaignRetryAt);
  const campaign = (why: string): Decision => {
    if (!campaignDue) {
      const early = v.campaignRetryAt !== null && v.lastCampaignAt !== null && v.campaignRetryAt < v.lastCampaignAt + v.timings.heartbeatMs;
      const next = early ? 'when the witness said it could be granted' : `after ${v.timings.heartbeatMs} ms`;
      return { nextRole: target, epoch: v.epoch, actions, reason: `${why}; next election attempt ${next}` };
    }
    // Retry the same epoch after a refusal (a live lease): epochs are consumed only by grants elsewhere.
    // An epoch this node gave its vote to someone else for is spent for it as well.
    const votedAway = v.votedFor && v.votedFor.node !== v.node ? v.votedFor.epoch : 0;
    const epoch = Math.max(v.epoch, v.witnessEpoch ?? 0, votedAway) + 1;
    actions.push({ kind: 'campaign', epoch });
    return { nextRole: target, epoch: v.epoch, actions, reason: `${why}: asking for epoch ${epoch}` };
  };

  if (!v.healthy) return { nextRole: target, epoch: v.epoch, actions, reason: 'no promotion: local services are unhealthy' };

  if (p && p.takeoverOffer !== null && p.alive) return campaign(`takeover offered by ${p.node}`);

  // At cluster start the preferred node may simply be slower to come up: a node that has never heard its
  // peer gives it a grace period before taking the role itself.
  if (p && p.lastSeenAgeMs === null && !v.preferred && v.uptimeMs < bootGraceMs(v.timings)) {
    return { nextRole: target, epoch: v.epoch, actions, reason: `peer ${p.node} not heard since start; waiting ${Math.ceil(bootGraceMs(v.timings) - v.uptimeMs)} ms for the preferred node before campaigning` };
  }
  if (!p || !p.alive) {
    const left = v.promiseUntil - v.now;
    if (left > 0) {
      return {
        nextRole: target,
        epoch: v.epoch,
        actions,
        reason: `peer ${p?.node ?? '(none)'} silent on all paths; waiting ${Math.ceil(left)} ms for its lease to run out`,
      };
    }
    return campaign(p ? `peer ${p.node} silent on all paths for over ${v.timings.deadAfterMs} ms and its lease expired` : 'no peer configured and no primary');
  }
  // Peer alive but nobody is primary (bootstrap, or after a fence): the preferred or the only healthy node runs.
  if (v.promiseUntil > v.now) {
    return { nextRole: target, epoch: v.epoch, actions, reason: `no primary; waiting ${Math.ceil(v.promiseUntil - v.now)} ms for the old primary's lease to run out` };
  }
  if (v.preferred || !p.healthy) {
    return campaign(v.preferred ? 'no primary in the cluster and this node is preferred' : `no primary and peer ${p.node} is unhealthy`);
  }
  if (v.noPrimaryForMs > bootGraceMs(v.timings)) {
    return campaign(`no primary for ${Math.round(v.noPrimaryForMs)} ms although preferred node ${p.node} is up`);
  }
  return { nextRole: target, epoch: v.epoch, actions, reason: `no primary yet; leaving the first election to preferred node ${p.node}` };
}

export interface VoteState {
  now: number;
  node: string;
  role: Role;
  epoch: number;
  votedFor: { epoch: number; node: string } | null;
  /** Primary this node promised not to undermine, and until when. */
  promise: { node: string; until: number } | null;
  /** The node this one hands the role to, once its data is handed over (offer published). */
  handoverTo: string | null;
  /** A handover this node started is still handing its data over: nobody may take the role yet. */
  handoverPending?: boolean;
}

/** Whether to grant `candidate` the epoch it asks for. Pure; the caller persists a granted vote. */
export function decideVote(s: VoteState, candidate: string, epoch: number): { granted: boolean; reason: string } {
  if (epoch <= s.epoch) return { granted: false, reason: `epoch ${epoch} is not above ours (${s.epoch})` };
  if (s.votedFor && s.votedFor.epoch >= epoch && s.votedFor.node !== candidate) {
    return { granted: false, reason: `already voted for ${s.votedFor.node} at epoch ${s.votedFor.epoch}` };
  }
  if (s.handoverPending) return { granted: false, reason: 'handing over: the data is not on the standby yet' };
  if (s.handoverTo === candidate) return { granted: true, reason: `handing over to ${candidate}` };
  if (s.role === 'primary') return { granted: false, reason: 'this node is primary with a valid lease' };
  if (s.promise && s.promise.until > s.now && s.promise.node !== candidate) {
    return { granted: false, reason: `primary ${s.promise.node} was heard ${Math.round(s.promise.until - s.now)} ms before its lease ends` };
  }
  return { granted: true, reason: `no live primary; granting epoch ${epoch} to ${candidate}` };
}
