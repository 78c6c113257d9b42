/**
 * decide(): the whole HA decision as a pure function of a read-only view. No I/O, no clock: time comes
 * in as `view.now` (monotonic ms). The agent loop gathers the view, calls decide() and executes the
 * returned actions through ports.
 */
import type { Role } from '../ports.js';
import { assertNever } from '../util/assert-never.js';

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
  /**
   * When not caught up: the data paths that lag, as far as known (the ones the peer reports behind and
   * the ones on which this node sees the peer behind), for the refusal's message. Empty or absent: unknown.
   */
  behind?: string[];
  /** ms since the peer was last heard on any path (null if never). */
  lastSeenAgeMs: number | null;
  /** The peer asked us to take over (graceful handover) at this epoch. */
  takeoverOffer: number | null;
  /** The data-holder record names the peer: it holds every acknowledged write. */
  holder: boolean;
  /**
   * Why the peer is incompatible (it refused our protocol version, or speaks one we do not accept), or
   * null. Such a peer is alive: nothing is promoted on it.
   */
  incompatible?: string | null;
}

export type AdminRequest =
  | { id: string; kind: 'switchover'; to: string | null }
  | { id: string; kind: 'failback' }
  /** `nimbus-ha promote --accept-data-loss`: become primary although the record does not name this node. */
  | { id: string; kind: 'promote' };

export interface ElectionView {
  epoch: number;
  granted: string[];
  refused: string[];
  /** The peer granted its vote because it is handing the role to this node (its data is handed over). */
  handoverGrant?: boolean;
  /** The campaign asked the witness to override the data-holder record (operator accepted data loss). */
  forced?: boolean;
  /** Why the witness refused, when it did (e.g. 'not-a-holder', 'lease-held'). */
  witnessRefusal?: string | null;
}

/** What this node knows of the durable data-holder record (safety invariant 2 in docs/architecture.md). */
export interface HolderView {
  /**
   * The record is in force for this cluster: some data path is synchronous and a coordinator keeps it.
   * Then a promotion needs the coordinator's grant (it grants only to a holder), unless the old primary
   * handed the role over after handing its data over.
   */
  kept: boolean;
  /** The record's members as the coordinator last reported them (null: not known yet, or none kept). */
  holders: string[] | null;
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
  /**
   * A planned move accepted by this primary that waits out `timings.handoverDrainMs` first: /primary
   * answers 503 so load balancers move away, while this node stays primary in every other respect
   * (lease, heartbeats, VIP, services). The handover starts at `untilMs` (monotonic).
   */
  drain: Drain | null;
  request: AdminRequest | null;
  vipHeld: boolean;
  /** Automatic fail-back to the preferred peer (keepalived's preempt_delay), off by default. */
  autoFailback: { enabled: boolean; holdDownMs: number; peerIsPreferred: boolean; peerReadyForMs: number };
  /** ms since this node last knew of a live primary (or since start). */
  noPrimaryForMs: number;
  /** ms since a handover this node started was aborted by a data path (null: none since start). */
  handoverAbortedAgoMs: number | null;
  /** ms since this node became primary by a switchover or fail-back (null: by other means, or not primary). */
  plannedMoveAgoMs: number | null;
  /** The data-holder record (zero acknowledged loss across double faults). */
  holderRecord: HolderView;
  timings: { heartbeatMs: number; deadAfterMs: number; leaseMs: number; handoverTimeoutMs: number; plannedHoldDownMs: number; handoverDrainMs: number };
}

/** See View.drain. */
export interface Drain {
  to: string;
  epoch: number;
  requestId: string | null;
  reason: 'switchover' | 'failback' | 'escalation';
  untilMs: number;
}

export type Action =
  | { kind: 'adoptEpoch'; epoch: number }
  | { kind: 'campaign'; epoch: number; force?: boolean }
  | { kind: 'promote'; epoch: number }
  | { kind: 'demote'; to: 'standby' | 'fenced'; rejoin: boolean }
  | { kind: 'acquireVip' }
  | { kind: 'releaseVip' }
  | { kind: 'handover'; to: string; epoch: number; requestId: string | null; reason: 'switchover' | 'failback' | 'escalation' }
  | { kind: 'abandonHandover' }
  | { kind: 'drain'; drain: Drain }
  | { kind: 'endDrain' }
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

/** Whether this node may not promote by itself: the record is kept, known, and does not name it. */
export function notAHolder(v: Pick<View, 'node' | 'holderRecord'>): boolean {
  const r = v.holderRecord;
  return r.kept && r.holders !== null && !r.holders.includes(v.node);
}

/** Which data paths keep the peer from being caught up, for a refusal's message. */
function lagging(p: PeerView): string {
  return p.behind && p.behind.length ? `behind on ${p.behind.join(', ')}` : 'database, repository or files lag';
}

/** The sentence an operator reads when a node that may lack acknowledged writes holds back. */
export function notAHolderReason(v: Pick<View, 'node' | 'holderRecord'>): string {
  const names = (v.holderRecord.holders ?? []).join(', ') || '(none)';
  return `not promoting: the data-holder record names ${names}, not ${v.node}, so this node may lack acknowledged writes; waiting for ${names} to return, or accept the loss with \`nimbus-ha promote --accept-data-loss\``;
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

/**
 * Hand the role to `to` at the next epoch: at once, or after draining load balancers for
 * `timings.handoverDrainMs` (this node stays primary meanwhile; see View.drain).
 */
function handOver(v: View, to: string, requestId: string | null, reason: Drain['reason'], why: string, first: Action[] = []): Decision {
  const epoch = v.epoch + 1;
  if (v.timings.handoverDrainMs > 0) {
    return {
      nextRole: 'primary',
      epoch: v.epoch,
      actions: [...first, { kind: 'drain', drain: { to, epoch, requestId, reason, untilMs: v.now + v.timings.handoverDrainMs } }],
      reason: `${why}; first draining load balancers for ${v.timings.handoverDrainMs} ms (/primary answers 503 while this node still serves)`,
    };
  }
  return { nextRole: 'standby', epoch: v.epoch, actions: [...first, { kind: 'handover', to, epoch, requestId, reason }], reason: why };
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
  const reconcile: Action[] = v.vipHeld ? [] : [{ kind: 'acquireVip' }];
  if (v.drain) {
    const d = v.drain;
    // The successor must still be there to take the role, and nobody paused automation meanwhile.
    const gone = !p || !p.alive ? `peer ${d.to} stopped answering` : !p.healthy ? `peer ${d.to} reports unhealthy services` : p.role !== 'standby' ? `peer ${d.to} is ${p.role ?? 'unknown'}, not a standby` : v.maintenance ? 'maintenance mode was turned on' : null;
    if (gone) {
      const message = `${d.reason} to ${d.to} aborted while draining: ${gone}; this node stays primary`;
      const actions: Action[] = [...reconcile, { kind: 'endDrain' }, { kind: 'emit', type: 'handover_aborted', severity: 'warning', message }];
      if (d.requestId) actions.push({ kind: 'completeRequest', id: d.requestId, ok: false, message });
      return keep(v, message, actions);
    }
    if (v.now < d.untilMs) {
      return keep(v, `${d.reason} to ${d.to}: draining, /primary answers 503 for ${Math.ceil(d.untilMs - v.now)} ms more while this node still serves`, reconcile);
    }
    return {
      nextRole: 'standby',
      epoch: v.epoch,
      actions: [{ kind: 'handover', to: d.to, epoch: d.epoch, requestId: d.requestId, reason: d.reason }],
      reason: `${d.reason}: drained; handing the primary role to ${d.to} at epoch ${d.epoch}`,
    };
  }
  if (v.maintenance) {
    const actions: Action[] = [...reconcile];
    if (v.request) actions.push({ kind: 'completeRequest', id: v.request.id, ok: false, message: 'refused: maintenance mode is on (turn it off first)' });
    return keep(v, `maintenance: primary, automation paused, lease held by ${votes} of ${v.voters} voters`, actions);
  }
  const peerReady = !!p && p.alive && p.healthy && (p.role === 'standby');

  if (v.request) {
    const r = v.request;
    const target = r.kind === 'switchover' ? r.to ?? p?.node ?? 'the peer' : r.kind === 'failback' ? 'the preferred node' : 'this node';
    const refusal = (msg: string): Decision =>
      keep(v, `${r.kind} refused: ${msg}`, [...reconcile, { kind: 'completeRequest', id: r.id, ok: false, message: `${r.kind} refused: ${msg}` }]);
    if (r.kind === 'promote') return refusal('this node is already primary');
    if (!p) return refusal('no peer is configured');
    const held = plannedHoldDownLeftMs(v);
    if (held > 0) return refusal(holdDownMessage(v.plannedMoveAgoMs ?? 0, held));
    if (r.kind === 'switchover' && r.to && r.to !== p.node) return refusal(`unknown node ${r.to} (expected ${p.node})`);
    if (r.kind === 'failback' && v.preferred) return refusal('this node is already the preferred primary');
    if (!p.alive) return refusal(`peer ${p.node} is not answering heartbeats`);
    if (!p.healthy) return refusal(`peer ${p.node} reports unhealthy services`);
    if (p.role !== 'standby') return refusal(`peer ${p.node} is ${p.role ?? 'unknown'}, not a standby`);
    if (!p.caughtUp) return refusal(`peer ${p.node} is not fully caught up yet (${lagging(p)})`);
    return handOver(v, p.node, r.id, r.kind, `${r.kind}: handing the primary role to ${target} (${p.node}) at epoch ${v.epoch + 1}`);
  }
  const hold = autoHandoverHoldMs(v);
  if (v.escalated) {
    // A standby named in the data-holder record has every acknowledged write even when it cannot look
    // caught up (the local database died, so nothing streams to it).
    if (peerReady && p && (p.caughtUp || (v.holderRecord.kept && p.holder))) {
      if (hold > 0) {
        return keep(v, `escalation pending: the last handover was aborted ${Math.round(v.handoverAbortedAgoMs ?? 0)} ms ago; retrying in ${Math.ceil(hold)} ms`, reconcile);
      }
      return handOver(v, p.node, null, 'escalation', `escalation: local services failed beyond their restart budget, handing over to healthy standby ${p.node}`, [
        { kind: 'emit', type: 'escalation_handover', severity: 'critical', message: `local services failed beyond their restart budget: handing over to ${p.node}` },
      ]);
    }
    const why = peerReady && p ? `standby ${p.node} is not fully caught up (${lagging(p)})` : 'no healthy standby to hand over to';
    return keep(v, `escalation pending: local services failing but ${why}; keep retrying`, reconcile);
  }
  const af = v.autoFailback;
  if (af.enabled && !v.preferred && af.peerIsPreferred && peerReady && p?.caughtUp) {
    if (af.peerReadyForMs >= af.holdDownMs) {
      if (hold > 0) {
        return keep(v, `no action: primary; automatic fail-back to ${p.node} held back for ${Math.ceil(hold)} ms after an aborted handover`, reconcile);
      }
      return handOver(v, p.node, null, 'failback', `automatic fail-back: preferred node ${p.node} healthy and caught up for ${Math.round(af.peerReadyForMs)} ms`);
    }
    return keep(v, `no action: primary; automatic fail-back to ${p.node} in ${Math.ceil(af.holdDownMs - af.peerReadyForMs)} ms if it stays healthy and caught up`, reconcile);
  }
  return keep(v, `no action: primary, lease renewed by ${votes} of ${v.voters} voters`, reconcile);
}

function decideNonPrimary(v: View): Decision {
  const p = v.peer;
  const actions: Action[] = [];
  if (v.vipHeld) actions.push({ kind: 'releaseVip' });
  const forcing = v.request?.kind === 'promote' ? v.request : null;
  if (v.request && !forcing) {
    actions.push({ kind: 'completeRequest', id: v.request.id, ok: false, message: `${v.request.kind} refused: send it to the primary (this node is ${v.role})` });
  }
  // A node that paused automation stays put (its VIP was released above if it is not primary).
  const baseRole: Role = v.role === 'fenced' ? 'fenced' : 'standby';
  const target: Role = v.maintenance ? 'maintenance' : baseRole;

  if (p?.alive && p.role === 'primary' && p.epoch >= v.epoch) {
    if (forcing) actions.push({ kind: 'completeRequest', id: forcing.id, ok: false, message: `promote refused: peer ${p.node} is primary at epoch ${p.epoch}; nothing is lost by waiting` });
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
  if (forcing && v.maintenance) actions.push({ kind: 'completeRequest', id: forcing.id, ok: false, message: 'promote refused: maintenance mode is on (turn it off first)' });
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
  if (forcing && e?.forced && e.epoch > v.epoch && !e.granted.includes('witness')) {
    // The operator's request ends with the witness's answer: it alone can change the record.
    actions.push({ kind: 'completeRequest', id: forcing.id, ok: false, message: `promote refused: the witness did not grant epoch ${e.epoch} (${e.witnessRefusal ?? 'unreachable'})` });
    return { nextRole: target, epoch: v.epoch, actions, reason: `forced promotion at epoch ${e.epoch} refused by the witness (${e.witnessRefusal ?? 'unreachable'})` };
  }
  if (e && e.epoch > v.epoch && e.granted.length + 1 >= v.majority) {
    // Zero acknowledged loss: with the record kept, only the coordinator's grant (given to holders only)
    // or the old primary's handover proves this node has every acknowledged write.
    if (v.holderRecord.kept && !e.granted.includes('witness') && !e.handoverGrant) {
      const why = e.witnessRefusal === 'not-a-holder' ? notAHolderReason(v) : `not promoting at epoch ${e.epoch}: the witness did not confirm that this node holds every acknowledged write (${e.witnessRefusal ?? 'unreachable'})`;
      return { nextRole: target, epoch: v.epoch, actions, reason: why };
    }
    if (!v.healthy && !e.forced) {
      return { nextRole: target, epoch: v.epoch, actions, reason: `not promoting at epoch ${e.epoch}: local services are unhealthy` };
    }
    if (forcing && e.forced) actions.push({ kind: 'completeRequest', id: forcing.id, ok: true, message: `promoted at epoch ${e.epoch}, accepting the loss of any write this node lacked` });
    actions.push({ kind: 'promote', epoch: e.epoch });
    return {
      nextRole: 'primary',
      epoch: e.epoch,
      actions,
      reason: `promote: epoch ${e.epoch} granted by ${['self', ...e.granted].join(' + ')} (majority ${v.majority} of ${v.voters})`,
    };
  }

  // A node outside the record asks again only about once a lease (the record changes rarely).
  const blocked = notAHolder(v) && !forcing && !(p && p.takeoverOffer !== null && p.alive);
  const pace = blocked ? Math.max(v.timings.heartbeatMs, v.timings.leaseMs) : v.timings.heartbeatMs;
  const campaignDue =
    v.lastCampaignAt === null || v.now - v.lastCampaignAt >= pace || (!blocked && v.campaignRetryAt !== null && v.now >= v.campaignRetryAt);
  const campaign = (why: string, force = false): Decision => {
    if (blocked) {
      if (campaignDue) actions.push({ kind: 'campaign', epoch: Math.max(v.epoch, v.witnessEpoch ?? 0, v.votedFor && v.votedFor.node !== v.node ? v.votedFor.epoch : 0) + 1 });
      return { nextRole: target, epoch: v.epoch, actions, reason: `${why}; ${notAHolderReason(v)}` };
    }
    if (!campaignDue && !force) {
      const early = v.campaignRetryAt !== null && v.lastCampaignAt !== null && v.campaignRetryAt < v.lastCampaignAt + v.timings.heartbeatMs;
      const next = early ? 'when the witness said it could be granted' : `after ${v.timings.heartbeatMs} ms`;
      return { nextRole: target, epoch: v.epoch, actions, reason: `${why}; next election attempt ${next}` };
    }
    // Retry the same epoch after a refusal (a live lease): epochs are consumed only by grants elsewhere.
    // An epoch this node gave its vote to someone else for is spent for it as well.
    const votedAway = v.votedFor && v.votedFor.node !== v.node ? v.votedFor.epoch : 0;
    const epoch = Math.max(v.epoch, v.witnessEpoch ?? 0, votedAway) + 1;
    actions.push(force ? { kind: 'campaign', epoch, force: true } : { kind: 'campaign', epoch });
    return { nextRole: target, epoch: v.epoch, actions, reason: `${why}: asking for epoch ${epoch}` };
  };

  if (forcing) {
    if (p?.alive && p.takeoverOffer === null && v.promiseUntil > v.now) {
      actions.push({ kind: 'completeRequest', id: forcing.id, ok: false, message: `promote refused: primary ${p.node} was heard ${Math.ceil(v.promiseUntil - v.now)} ms before its lease ends` });
      return { nextRole: target, epoch: v.epoch, actions, reason: 'forced promotion refused: the primary still holds its lease' };
    }
    return campaign('operator accepted data loss (promote --accept-data-loss)', true);
  }

  if (!v.healthy) return { nextRole: target, epoch: v.epoch, actions, reason: 'no promotion: local services are unhealthy' };

  // A peer that answers in a protocol version this node does not accept (or refuses ours) is alive: its
  // silence on what it is doing is no reason to promote. The operator finishes the upgrade.
  if (p && p.alive && p.incompatible) {
    return { nextRole: target, epoch: v.epoch, actions, reason: `peer ${p.node} is alive but incompatible (${p.incompatible}); not campaigning` };
  }

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
export function decideVote(s: VoteState, candidate: string, epoch: number): { granted: boolean; reason: string; handover?: boolean } {
  if (epoch <= s.epoch) return { granted: false, reason: `epoch ${epoch} is not above ours (${s.epoch})` };
  if (s.votedFor && s.votedFor.epoch >= epoch && s.votedFor.node !== candidate) {
    return { granted: false, reason: `already voted for ${s.votedFor.node} at epoch ${s.votedFor.epoch}` };
  }
  if (s.handoverPending) return { granted: false, reason: 'handing over: the data is not on the standby yet' };
  if (s.handoverTo === candidate) return { granted: true, reason: `handing over to ${candidate}`, handover: true };
  if (s.role === 'primary') return { granted: false, reason: 'this node is primary with a valid lease' };
  if (s.promise && s.promise.until > s.now && s.promise.node !== candidate) {
    return { granted: false, reason: `primary ${s.promise.node} was heard ${Math.round(s.promise.until - s.now)} ms before its lease ends` };
  }
  return { granted: true, reason: `no live primary; granting epoch ${epoch} to ${candidate}` };
}

/** How much longer planned moves are held down after the last one made this node primary (0: not held). */
export function plannedHoldDownLeftMs(v: Pick<View, 'plannedMoveAgoMs' | 'timings'>): number {
  return v.plannedMoveAgoMs === null ? 0 : Math.max(0, v.timings.plannedHoldDownMs - v.plannedMoveAgoMs);
}

export function holdDownMessage(agoMs: number, leftMs: number): string {
  return `hold-down: this node became primary by a planned move ${(agoMs / 1000).toFixed(1)} s ago; the next switchover or fail-back is allowed in ${Math.ceil(leftMs / 1000)} s (timings.plannedHoldDownMs)`;
}
