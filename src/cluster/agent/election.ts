import { errorMessage } from '../../errors.js';
import { decideVote, type View } from '../decide.js';
import { hooksOf, type AgentCore, type TakeoverTiming } from './state.js';

/** Earliest retry of a campaign the witness refused, however little of the old lease was left. */
const MIN_CAMPAIGN_RETRY_MS = 5;

/**
 * The kind of takeover a campaign starts timing, or null to keep the timing already running (a retry of
 * the same takeover). A timing is kept only while the epoch is the same and nothing relabels it: a
 * bootstrap that turns out not to be the first primary, or a takeover offer (switchover, fail-back)
 * arriving after an earlier campaign at this epoch (say, a refused recovery while the primary looked
 * unhealthy) which must not lend the planned move its label and start time.
 */
export function campaignKind(
  prev: Pick<TakeoverTiming, 'kind' | 'epochBefore'> | null,
  now: { epoch: number; offer: 'switchover' | 'failback' | null; firstPrimary: boolean; peerAlive: boolean },
): TakeoverTiming['kind'] | null {
  const kind: TakeoverTiming['kind'] = now.offer ?? (now.firstPrimary ? 'bootstrap' : now.peerAlive ? 'recovery' : 'failover');
  if (!prev || prev.epochBefore !== now.epoch) return kind;
  if (prev.kind === 'bootstrap' && !now.firstPrimary) return kind;
  if (now.offer !== null && prev.kind !== now.offer) return kind;
  return null;
}

/**
 * Ask every voter (the witness, and the peer when alive) for `epoch`. The result lands in the state's
 * election for the next decision cycle; a majority kicks that cycle at once.
 */
export async function campaign(c: AgentCore, epoch: number, view: View, force = false): Promise<void> {
  const s = c.s;
  const cfg = c.d.config;
  const st = c.d.store.get();
  if (st.votedFor && st.votedFor.epoch >= epoch && st.votedFor.node !== cfg.node) {
    s.election = { epoch, granted: [], refused: ['self'], forced: force, witnessRefusal: null };
    s.lastCampaignAt = c.d.clock.monotonicMs();
    return;
  }
  const startedAt = c.d.clock.monotonicMs();
  s.lastCampaignAt = startedAt;
  s.campaignRetryAt = null;
  const p = view.peer;
  // The cluster's first primary is a bootstrap even when the peer has not started yet (never heard, or
  // heard before any primary): counting it as a failover would fire failover alerts on every fresh
  // start. A standby whose own epoch is still 0 but that heard a primary at a later epoch fails over, and
  // so does one that never heard the primary but learnt from the witness that some node held an epoch.
  const firstPrimary = !p || (c.epoch === 0 && (p.role === null || p.epoch === 0) && (s.witnessEpoch ?? 0) === 0);
  const kind = campaignKind(s.timing, { epoch: c.epoch, offer: s.takeoverOffer !== null ? s.takeoverReason : null, firstPrimary, peerAlive: !!p?.alive });
  if (kind) {
    const data = Object.fromEntries(hooksOf(c).filter((h) => h.status).map((h) => [h.name, h.status!()]));
    s.timing = { kind, detectMs: p && !p.alive ? c.observer.lastDetectMs : null, campaignStartedAt: startedAt, epochBefore: c.epoch, data };
  }
  c.d.store.update({ votedFor: { epoch, node: cfg.node } });
  const granted: string[] = [];
  const refused: string[] = [];
  const asks: Promise<void>[] = [];
  const timeout = c.timings.requestTimeoutMs;
  let witnessRefusal: string | null = null;
  let handoverGrant = false;
  const coord = c.d.coordinator;
  if (coord) {
    const kept = c.holders.kept();
    asks.push(
      coord
        .acquire(cfg.node, epoch, c.timings.leaseMs, timeout, undefined, { holderRecord: kept, force })
        .then((a) => {
          c.witness.answered(a);
          if (a.granted) {
            granted.push('witness');
            s.leaseAcks.witness = startedAt;
            return;
          }
          refused.push('witness');
          witnessRefusal = a.reason ?? (a.holder ? 'lease-held' : 'stale-epoch');
          if (a.reason === 'not-a-holder') c.holders.refused(a);
          if (a.epoch >= epoch) s.witnessEpoch = a.epoch;
          // Refused for another node's live lease: retry the moment it runs out (the witness counts
          // from its answer, so from the arrival of the answer is never early) instead of waiting
          // for the next heartbeat-paced attempt. The floor keeps a stale answer from spinning.
          if (a.holder !== null && a.holder !== cfg.node && a.remainingMs > 0) {
            s.campaignRetryAt = c.d.clock.monotonicMs() + Math.max(a.remainingMs + 1, MIN_CAMPAIGN_RETRY_MS);
          } else if (a.epoch >= epoch) {
            // No live lease in the way, only an epoch the witness has already passed (this node
            // missed a grant): the next attempt asks above a.epoch, so it need not wait a heartbeat.
            s.campaignRetryAt = c.d.clock.monotonicMs() + MIN_CAMPAIGN_RETRY_MS;
          }
        })
        .catch((err) => {
          refused.push('witness');
          witnessRefusal = `unreachable: ${errorMessage(err)}`;
          c.witness.failed(err);
        }),
    );
  }
  if (c.peerCfg && view.peer?.alive) {
    const peer = c.peerCfg;
    asks.push(
      Promise.any(peer.urls.map((u) => c.d.transport.post<{ granted: boolean; handover?: boolean }>(u, '/peer/vote', { node: cfg.node, epoch }, timeout)))
        .then((r) => {
          if (r.granted) {
            granted.push(peer.node);
            s.leaseAcks[peer.node] = startedAt;
            if (r.handover === true) handoverGrant = true;
          } else refused.push(peer.node);
        })
        .catch(() => {
          refused.push(peer.node);
        }),
    );
  }
  await Promise.all(asks);
  s.election = { epoch, granted, refused, handoverGrant, forced: force, witnessRefusal };
  if (granted.length + 1 >= c.majority) c.kick();
}

/** The peer asks for our vote for `epoch`. */
export function receiveVote(c: AgentCore, candidate: string, epoch: number): { granted: boolean; reason: string; epoch: number; handover?: boolean } {
  const s = c.s;
  const st = c.d.store.get();
  const r = decideVote(
    {
      now: c.d.clock.monotonicMs(),
      node: c.d.config.node,
      role: s.role,
      epoch: st.epoch,
      votedFor: st.votedFor,
      promise: s.promise,
      handoverTo: s.handover?.ready ? s.handover.to : null,
      handoverPending: s.handingDataOver(),
    },
    candidate,
    epoch,
  );
  if (r.granted) c.d.store.update({ votedFor: { epoch, node: candidate } });
  c.d.bus.emit({ type: r.granted ? 'vote_granted' : 'vote_refused', severity: 'info', message: `vote for ${candidate} at epoch ${epoch}: ${r.reason}` });
  return { ...r, epoch: st.epoch };
}
