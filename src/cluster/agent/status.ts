import { leaseRemainingMs, notAHolder, validLeaseVotes } from '../decide.js';
import type { PeerExchange } from './peer-exchange.js';
import { ownProtocol } from '../../peer/protocol.js';
import { hooksOf, type AgentCore } from './state.js';

function finiteOrNull(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n) : null;
}

/** The agent's /status projection (the node, its lease, VIP, peer, witness, holders, data paths). */
export function agentStatus(c: AgentCore, peers: PeerExchange): Record<string, unknown> {
  const s = c.s;
  const now = c.d.clock.monotonicMs();
  const t = c.timings;
  const v = s.lastDecision;
  const link = c.peerLink;
  const leaseView = { now, leaseAcks: s.leaseAcks, timings: t, majority: c.majority };
  const kept = c.holders.kept();
  const me = ownProtocol();
  return {
    node: c.d.config.node,
    role: s.role,
    epoch: c.epoch,
    maintenance: c.maintenance,
    maintenance_scope: c.maintenanceScope,
    draining: s.role === 'primary' && s.drain ? { to: s.drain.to, reason: s.drain.reason, left_ms: Math.max(0, Math.round(s.drain.untilMs - now)) } : null,
    healthy: c.d.health.healthy(),
    reason: v?.reason ?? 'starting',
    lease:
      s.role === 'primary'
        ? { votes: validLeaseVotes(leaseView), voters: c.voters, majority: c.majority, remaining_ms: finiteOrNull(leaseRemainingMs(leaseView)) }
        : { votes: 0, voters: c.voters, majority: c.majority, remaining_ms: 0 },
    vip: c.d.vip ? { address: c.d.vip.describe(), held: s.vipHeld } : null,
    peers: link
      ? [
          {
            node: link.node,
            // Where its sidecar answers (its dashboard is at <url>/ui).
            urls: c.d.config.peers.find((p) => p.node === link.node)?.urls.filter((u) => /^https?:\/\//.test(u)) ?? [],
            alive: link.alive(now, t.deadAfterMs),
            role: link.lastState?.role ?? null,
            epoch: link.lastState?.epoch ?? null,
            healthy: link.lastState?.healthy ?? null,
            caught_up: link.lastState?.caughtUp ?? null,
            last_seen_ms: link.lastHeardAt === null ? null : Math.round(now - link.lastHeardAt),
            paths: link.paths.map((p) => ({
              url: p.url,
              age_ms: p.lastOkAt === null ? null : Math.round(now - p.lastOkAt),
              degraded: p.lastOkAt === null || now - p.lastOkAt >= t.deadAfterMs,
              sent: p.sent,
              failed: p.failed,
              answered_only: p.skipped,
              inbound_age_ms: p.lastInboundAt === null ? null : Math.round(now - p.lastInboundAt),
              last_error: p.lastError,
            })),
            replication: link.lastState?.replication ?? null,
            timings: peers.peerTimings,
            protocol: peers.peerVersion?.protocol ?? null,
            release: peers.peerVersion?.release ?? null,
            incompatible: link.incompatible(now, t.deadAfterMs),
          },
        ]
      : [],
    witness: c.witness.status(now),
    data_holders: { kept, holders: c.holders.holders, not_a_holder: notAHolder({ node: c.d.config.node, holderRecord: { kept, holders: c.holders.holders } }) },
    witness_unreachable: c.witness.unreachable(),
    services: c.d.health.status(),
    replication: Object.fromEntries(hooksOf(c).filter((h) => h.status).map((h) => [h.name, h.status!()])),
    requests: c.inbox.recent(10),
    timings: t,
    protocol: { version: me.version, accepts: me.accepts, release: me.release },
    mixed_versions: peers.peerVersion !== null && (peers.peerVersion.protocol !== me.version || (peers.peerVersion.release ?? me.release) !== me.release),
    uptime_ms: Math.round(now - c.startedAt),
  };
}

/** Per-path heartbeat ages for metrics. */
export function pathAgesMs(c: AgentCore): { peer: string; url: string; ageMs: number | null }[] {
  const link = c.peerLink;
  if (!link) return [];
  const now = c.d.clock.monotonicMs();
  return link.pathAges(now).map((p) => ({ peer: link.node, ...p }));
}

/** Replication lag (ms) reported by data-path hooks, the largest one, for /standby?max_lag_ms. */
export function lagMs(c: AgentCore): number | null {
  let worst: number | null = null;
  for (const h of hooksOf(c)) {
    const st = h.status?.();
    const lag = st && typeof st.lag_ms === 'number' ? st.lag_ms : null;
    if (lag !== null) worst = Math.max(worst ?? 0, lag);
  }
  return worst;
}
