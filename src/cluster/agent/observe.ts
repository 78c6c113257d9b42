import type { View } from '../decide.js';
import { hooksOf, type AgentCore } from './state.js';

/**
 * The decision input: buildView() gathers it once per cycle into a read-only snapshot, and the
 * Observer turns what it sees into events that are observations, not decisions (path health, peer
 * liveness), remembering when the peer died for the takeover's timings.
 */
export class Observer {
  private pathDegraded: boolean[];
  private peerWasAlive: boolean | null = null;
  private peerWasIncompatible = false;
  /** Since when (monotonic) the peer has been dead, or null. */
  peerDeadSince: number | null = null;
  /** Silence (ms) after which the peer was declared dead, at the last alive -> dead transition. */
  lastDetectMs: number | null = null;

  constructor(private readonly c: AgentCore) {
    this.pathDegraded = c.peerCfg ? c.peerCfg.urls.map(() => false) : [];
  }

  observe(v: View): void {
    const c = this.c;
    const dead = c.timings.deadAfterMs;
    const p = v.peer;
    if (!p) return;
    p.paths.forEach((path, i) => {
      const silent = path.ageMs === null ? v.uptimeMs > dead : path.ageMs >= dead;
      const others = p.paths.some((q, j) => j !== i && q.ageMs !== null && q.ageMs < dead);
      if (silent && others && !this.pathDegraded[i]) {
        this.pathDegraded[i] = true;
        c.d.bus.emit({ type: 'path_degraded', severity: 'warning', message: `heartbeat path ${path.url} to ${p.node} silent; other paths still answer`, details: { url: path.url } });
      } else if (!silent && this.pathDegraded[i]) {
        this.pathDegraded[i] = false;
        c.d.bus.emit({ type: 'path_restored', severity: 'info', message: `heartbeat path ${path.url} to ${p.node} answers again`, details: { url: path.url } });
      }
    });
    // Compatibility is known only while the peer answers; a silent peer keeps its last known state, so
    // one that was incompatible, restarts on a compatible release and takes longer than deadAfterMs to
    // come back is still reported compatible again (peer_dead and peer_alive say it was away).
    const incompatible = !!p.incompatible;
    if (p.alive && incompatible !== this.peerWasIncompatible) {
      this.peerWasIncompatible = incompatible;
      if (incompatible) {
        c.d.bus.emit({
          type: 'peer_incompatible',
          severity: 'critical',
          message: `peer ${p.node} is alive but speaks an incompatible protocol: ${p.incompatible}; no promotion on it until both run compatible releases`,
          details: { reason: p.incompatible },
        });
      } else {
        c.d.bus.emit({ type: 'peer_compatible', severity: 'info', message: `peer ${p.node} speaks a compatible protocol again` });
      }
    }
    if (this.peerWasAlive !== p.alive) {
      // The first observation at start-up is not news; only transitions after it are.
      if (this.peerWasAlive !== null) {
        c.d.bus.emit({
          type: p.alive ? 'peer_alive' : 'peer_dead',
          severity: p.alive ? 'info' : 'critical',
          message: p.alive ? `peer ${p.node} answers heartbeats` : `peer ${p.node} silent on all ${p.paths.length} path(s) for ${dead} ms`,
          details: p.alive ? {} : { lastSeenAgeMs: p.lastSeenAgeMs },
        });
      }
      this.peerDeadSince = p.alive ? null : v.now;
      if (!p.alive) {
        const freshest = Math.min(...p.paths.map((x) => x.ageMs ?? Number.POSITIVE_INFINITY));
        this.lastDetectMs = Number.isFinite(freshest) ? Math.round(freshest) : null;
      }
      this.peerWasAlive = p.alive;
    }
  }
}

/** The snapshot decide() sees. Also notes, as a side effect, when a primary peer or a ready standby was last seen. */
export function buildView(c: AgentCore): View {
  const s = c.s;
  const now = c.d.clock.monotonicMs();
  const cfg = c.d.config;
  const t = c.timings;
  const link = c.peerLink;
  let peer: View['peer'] = null;
  if (link && c.peerCfg) {
    const st = link.lastState;
    const alive = link.alive(now, t.deadAfterMs);
    // The data paths on which this node (as primary) sees the peer behind.
    const seenBehind = hooksOf(c).filter((h) => h.peerCaughtUp && !h.peerCaughtUp()).map((h) => h.name);
    peer = {
      node: c.peerCfg.node,
      alive,
      paths: link.pathAges(now),
      role: st?.role ?? null,
      epoch: st?.epoch ?? 0,
      healthy: st?.healthy ?? false,
      caughtUp: (st?.caughtUp ?? false) && seenBehind.length === 0,
      behind: [...new Set([...(st && !st.caughtUp ? (Array.isArray(st.behind) ? st.behind.filter((x) => typeof x === 'string') : []) : []), ...seenBehind])],
      lastSeenAgeMs: link.lastHeardAt === null ? null : now - link.lastHeardAt,
      takeoverOffer: s.takeoverOffer,
      holder: c.holders.peerIsHolder(),
      incompatible: link.incompatible(now, t.deadAfterMs),
    };
    if (alive && st?.role === 'primary') s.lastPrimarySeenAt = now;
  }
  const preferred = cfg.preferredPrimary ? cfg.preferredPrimary === cfg.node : !c.peerCfg || cfg.node < c.peerCfg.node;
  const peerReady = !!peer && peer.alive && peer.healthy && peer.role === 'standby' && peer.caughtUp;
  if (!peerReady) s.peerReadySince = null;
  else if (s.peerReadySince === null) s.peerReadySince = now;
  return {
    now,
    node: cfg.node,
    role: s.role,
    epoch: c.epoch,
    maintenance: c.maintenance,
    healthy: c.localHealthy(),
    escalated: c.localEscalated(),
    preferred,
    uptimeMs: now - c.startedAt,
    peer,
    voters: c.voters,
    majority: c.majority,
    leaseAcks: { ...s.leaseAcks },
    promiseUntil: s.promise?.until ?? 0,
    witnessEpoch: s.witnessEpoch,
    votedFor: c.d.store.get().votedFor,
    election: s.election,
    lastCampaignAt: s.lastCampaignAt,
    campaignRetryAt: s.campaignRetryAt,
    handover: s.handover,
    drain: s.role === 'primary' ? s.drain : null,
    request: c.inbox.head(),
    vipHeld: s.vipHeld,
    noPrimaryForMs: s.role === 'primary' ? 0 : now - s.lastPrimarySeenAt,
    handoverAbortedAgoMs: s.handoverAbortedAt === null ? null : now - s.handoverAbortedAt,
    plannedMoveAgoMs: s.plannedMoveAt === null ? null : now - s.plannedMoveAt,
    holderRecord: { kept: c.holders.kept(), holders: c.holders.list() },
    autoFailback: {
      enabled: cfg.failback.auto,
      holdDownMs: cfg.failback.holdDownMs,
      peerIsPreferred: !!c.peerCfg && cfg.preferredPrimary === c.peerCfg.node,
      peerReadyForMs: s.peerReadySince === null ? 0 : now - s.peerReadySince,
    },
    timings: { heartbeatMs: t.heartbeatMs, deadAfterMs: t.deadAfterMs, leaseMs: t.leaseMs, handoverTimeoutMs: t.handoverTimeoutMs, plannedHoldDownMs: t.plannedHoldDownMs, handoverDrainMs: t.handoverDrainMs },
  };
}

/**
 * The inputs of decide() that can change between cycles without an event of their own, in one string:
 * own role, epoch, maintenance, VIP, witness epoch, health; the peer's liveness, role, epoch, health,
 * catch-up and offer; which paths are fresh. Cheap enough for every tick.
 */
export function inputSignature(c: AgentCore): string {
  const s = c.s;
  let sig = `${s.role}|${c.epoch}|${c.maintenance}|${s.vipHeld}|${s.witnessEpoch}|${c.localHealthy()}|${c.localEscalated()}|${c.holders.holders?.join(',')}`;
  const link = c.peerLink;
  if (link) {
    const now = c.d.clock.monotonicMs();
    const dead = c.timings.deadAfterMs;
    const st = link.lastState;
    sig += `|${link.alive(now, dead)}|${link.incompatible(now, dead) !== null}|${st?.role}|${st?.epoch}|${st?.healthy}|${st?.caughtUp}|${st?.takeoverOffer}|`;
    for (const p of link.paths) sig += p.lastOkAt !== null && now - p.lastOkAt < dead ? '1' : '0';
  }
  return sig;
}
