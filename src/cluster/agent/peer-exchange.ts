import { errorMessage } from '../../errors.js';
import { peerMaintenanceWins, type HeartbeatMessage, type HeartbeatReply } from '../heartbeat.js';
import { hooksOf, type AgentCore } from './state.js';
import { ownProtocol, statedVersions } from '../../peer/protocol.js';

/** The timings both nodes must share; heartbeats carry them (as a tuple) so a mismatch is reported. */
export interface TimingsTriple {
  heartbeatMs: number;
  deadAfterMs: number;
  leaseMs: number;
}
const sameTimings = (x: TimingsTriple, y: TimingsTriple) => x.heartbeatMs === y.heartbeatMs && x.deadAfterMs === y.deadAfterMs && x.leaseMs === y.leaseMs;
const formatTimings = (t: TimingsTriple) => `${t.heartbeatMs} / ${t.deadAfterMs} / ${t.leaseMs}`;

/**
 * What the two nodes tell each other in heartbeats (both directions): this node's message, and what
 * the peer's says — its state for the decision, its data paths' reports for the local data paths, its
 * timings, its lease acknowledgements and takeover offers.
 */
export class PeerExchange {
  private cache: { at: number; key: string; msg: HeartbeatMessage } | null = null;
  /** The peer's timings as its heartbeats last reported them. */
  peerTimings: TimingsTriple | null = null;

  constructor(private readonly c: AgentCore) {}

  /**
   * What this node tells its peer. Built at most about twice per heartbeat interval (a standby answers
   * one request per path and interval); a change of role, epoch or offer builds a fresh one at once.
   */
  message(): HeartbeatMessage {
    const { s } = this.c;
    const now = this.c.d.clock.monotonicMs();
    const key = `${s.role}|${this.c.epoch}|${s.handover?.epoch}|${s.handover?.ready}|${s.handoverReason}|${this.c.maintenance}|${this.c.d.store.get().maintenanceVersion}`;
    const cached = this.cache;
    if (cached && cached.key === key && now - cached.at < this.c.timings.heartbeatMs / 2) return cached.msg;
    const msg = this.build();
    this.cache = { at: now, key, msg };
    return msg;
  }

  private build(): HeartbeatMessage {
    const c = this.c;
    const hooks = hooksOf(c);
    const t = c.timings;
    const replication: Record<string, unknown> = {};
    for (const h of hooks) if (h.peerStatus) replication[h.name] = h.peerStatus();
    const behind = hooks.filter((h) => h.caughtUp && !h.caughtUp()).map((h) => h.name);
    return {
      node: c.d.config.node,
      role: c.s.role,
      epoch: c.epoch,
      healthy: c.d.health.healthy(),
      caughtUp: behind.length === 0,
      ...(behind.length ? { behind } : {}),
      // Offered only once the data is handed over: a peer that promoted earlier would fork the database
      // before the old primary's last WAL (its shutdown checkpoint) reached it, and miss the last images.
      takeoverOffer: c.s.handover?.ready ? c.s.handover.epoch : null,
      takeoverReason: c.s.handoverReason,
      sentAt: c.d.clock.nowMs(),
      replication,
      timings: [t.heartbeatMs, t.deadAfterMs, t.leaseMs],
      maintenance: [c.d.store.get().maintenance, c.d.store.get().maintenanceVersion],
      ...versionFields(),
    };
  }

  /**
   * What the peer said about its protocol version and release (on its requests and heartbeats), and why
   * this node does not accept it (null when it does). Reported once when the peer runs another release
   * or protocol than this node (a mixed-version cluster, as during a rolling upgrade) and on each change.
   */
  peerVersion: { protocol: number; release: string | null; problem: string | null } | null = null;

  noteVersion(protocol: number, release: string | null, problem: string | null): void {
    const c = this.c;
    if (problem) c.peerLink?.heardIncompatible(problem);
    const prev = this.peerVersion;
    if (prev && prev.protocol === protocol && (release === null || prev.release === release) && prev.problem === problem) return;
    this.peerVersion = { protocol, release: release ?? prev?.release ?? null, problem };
    const me = ownProtocol();
    const peer = c.peerCfg?.node ?? 'peer';
    const same = protocol === me.version && (release ?? me.release) === me.release;
    if (!prev && same) return;
    c.d.bus.emit({
      type: 'peer_version',
      severity: same ? 'info' : 'warning',
      message: same
        ? `peer ${peer} runs release ${me.release} (protocol ${me.version}) like this node`
        : `mixed-version cluster: peer ${peer} runs release ${release ?? 'unknown'} (protocol ${protocol}), this node ${me.release} (protocol ${me.version})${problem ? `; ${problem}` : '; finish the upgrade'}`,
      details: { peer: { protocol, release }, self: { protocol: me.version, release: me.release }, compatible: problem === null },
    });
  }

  /** Take the peer's maintenance setting when it is newer (maintenance is cluster-wide). */
  private adoptMaintenance(msg: HeartbeatMessage): void {
    const c = this.c;
    const local = { on: c.d.store.get().maintenance, version: c.d.store.get().maintenanceVersion };
    if (!peerMaintenanceWins(local, msg.maintenance)) return;
    const [on, version] = msg.maintenance!;
    c.d.store.update({ maintenance: on, maintenanceVersion: version });
    if (on !== local.on) {
      c.d.bus.emit({
        type: on ? 'maintenance_on' : 'maintenance_off',
        severity: 'warning',
        message: on ? `maintenance mode on (set on ${msg.node}): automatic promotion, handover and restarts paused on both nodes` : `maintenance mode off (set on ${msg.node}): automation resumed`,
        details: { scope: 'cluster', from: msg.node, version },
      });
    }
    c.kick();
  }

  /** Incoming heartbeat from the peer. */
  receive(msg: HeartbeatMessage): HeartbeatReply {
    const c = this.c;
    const s = c.s;
    const now = c.d.clock.monotonicMs();
    c.peerLink?.heard(msg);
    this.noteVersion(statedVersions(msg.protocol, undefined).max, msg.release ?? null, null);
    this.toHooks(msg);
    this.noteTimings(msg);
    this.adoptMaintenance(msg);
    let ack = false;
    if (msg.role === 'primary' && msg.epoch >= c.epoch && s.role !== 'primary') {
      s.promise = { node: msg.node, until: now + c.timings.leaseMs };
      s.lastPrimarySeenAt = now;
      ack = true;
    }
    if (msg.takeoverOffer !== null && msg.takeoverOffer > c.epoch) s.offered(msg.takeoverOffer, msg.takeoverReason);
    return { state: this.message(), ack };
  }

  /** The peer's answer to one of our heartbeats. */
  onReply(reply: HeartbeatReply, sentAt: number): void {
    const c = this.c;
    const s = c.s;
    if (s.role === 'primary' && reply.ack && c.peerCfg) {
      const prev = s.leaseAcks[c.peerCfg.node] ?? 0;
      if (sentAt > prev) s.leaseAcks[c.peerCfg.node] = sentAt;
    }
    const st = reply.state;
    this.noteVersion(statedVersions(st.protocol, undefined).max, st.release ?? null, null);
    this.toHooks(st);
    this.noteTimings(st);
    this.adoptMaintenance(st);
    if (st.role === 'primary' && st.epoch >= c.epoch && s.role !== 'primary') {
      s.lastPrimarySeenAt = c.d.clock.monotonicMs();
    }
    if (st.takeoverOffer !== null && st.takeoverOffer > c.epoch) s.offered(st.takeoverOffer, st.takeoverReason);
    // A higher-epoch primary must be acted on at once, not at the next tick.
    if (st.role === 'primary' && st.epoch > c.epoch) c.kick();
  }

  /** The peer hands the primary role to us. */
  receiveTakeover(from: string, epoch: number, reason: string = 'switchover'): { accepted: boolean; reason: string } {
    const c = this.c;
    if (epoch <= c.epoch) return { accepted: false, reason: `epoch ${epoch} is not above ours (${c.epoch})` };
    c.s.offered(epoch, reason);
    c.d.bus.emit({ type: 'takeover_offered', severity: 'info', message: `${from} offers the primary role at epoch ${epoch}` });
    c.kick();
    return { accepted: true, reason: 'campaigning now' };
  }

  /** Hand each data path the peer's report for it (the repository sync reads the primary's change hint there). */
  private toHooks(msg: HeartbeatMessage): void {
    const c = this.c;
    const rep = msg.replication && typeof msg.replication === 'object' ? msg.replication : {};
    for (const h of hooksOf(c)) {
      if (!h.onPeerStatus) continue;
      const v = rep[h.name];
      try {
        h.onPeerStatus(v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined, { heartbeatMs: c.timings.heartbeatMs });
      } catch (err) {
        c.d.log?.warn({ err: errorMessage(err), hook: h.name }, 'onPeerStatus failed');
      }
    }
  }

  /**
   * Both nodes must run the same heartbeat, dead-after and lease (docs/operations.md). Reports the
   * peer's timings once when they differ from ours (and each time they change), and once when they
   * match again. A peer that sends no timings (an older release) is not judged.
   */
  private noteTimings(msg: HeartbeatMessage): void {
    const c = this.c;
    const t = msg.timings;
    if (!Array.isArray(t) || t.length !== 3 || !t.every((x) => typeof x === 'number')) return;
    const peer: TimingsTriple = { heartbeatMs: t[0], deadAfterMs: t[1], leaseMs: t[2] };
    const prev = this.peerTimings;
    if (prev && sameTimings(prev, peer)) return;
    this.peerTimings = peer;
    const own: TimingsTriple = { heartbeatMs: c.timings.heartbeatMs, deadAfterMs: c.timings.deadAfterMs, leaseMs: c.timings.leaseMs };
    const details = { peer: msg.node, peerTimings: peer, ownTimings: own };
    if (!sameTimings(peer, own)) {
      c.d.bus.emit({
        type: 'peer_timings_differ',
        severity: 'warning',
        message: `peer ${msg.node} runs heartbeat / dead-after / lease ${formatTimings(peer)} ms, this node ${formatTimings(own)} ms: both nodes must use the same timings (set timings alike on both and restart them; docs/operations.md)`,
        details,
      });
    } else if (prev) {
      // prev differed from peer, which equals own: the mismatch is over.
      c.d.bus.emit({ type: 'peer_timings_match', severity: 'info', message: `peer ${msg.node} now runs the same timings as this node (${formatTimings(own)} ms)`, details });
    }
  }
}

/** This node's own protocol version and release in a heartbeat (none from a release of version 1). */
function versionFields(): { protocol?: number; release?: string } {
  const me = ownProtocol();
  return me.version >= 2 ? { protocol: me.version, release: me.release } : {};
}
