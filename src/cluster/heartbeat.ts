import type { Clock, PeerTransport, Role } from '../ports.js';
import { errorMessage, HaError } from '../errors.js';
import { udpUrlOf } from '../peer/udp.js';

/** Where heartbeats to a peer go: its URLs (http) or the same host:port over UDP (the default). */
export function heartbeatUrls(peer: { urls: string[]; heartbeat?: 'udp' | 'http' }): string[] {
  return peer.heartbeat === 'http' ? peer.urls : peer.urls.map(udpUrlOf);
}

/** What a sidecar tells its peer on every heartbeat. */
export interface HeartbeatMessage {
  node: string;
  role: Role;
  epoch: number;
  healthy: boolean;
  /** Fully caught up on every data path (meaningful on a standby). */
  caughtUp: boolean;
  /** When not caught up: the names of the data paths that lag (absent when caught up, and from older releases). */
  behind?: string[];
  /** Epoch offered to the peer in a graceful handover, or null. */
  takeoverOffer: number | null;
  /** Why the takeover is offered (switchover, failback, escalation). */
  takeoverReason?: string;
  sentAt: number;
  /** Index of the path this copy was sent on (paths are listed in the same order on both nodes). */
  path?: number;
  /** Data-path summaries (lag, positions) for the peer's status page. */
  replication?: Record<string, unknown>;
  /** The sender's heartbeatMs, deadAfterMs and leaseMs, so a mismatch between the nodes is reported. */
  timings?: [number, number, number];
  /** The cluster's maintenance setting as the sender holds it: on, and its version (see EpochState). */
  maintenance?: [boolean, number];
  /** The sender's protocol version and release (src/peer/protocol.ts); absent from version 1. */
  protocol?: number;
  release?: string;
}

/**
 * Whether a peer's maintenance setting replaces ours: a higher version does; at the same version a
 * setting that pauses wins over one that does not (both nodes changed it at once: stay safe).
 */
export function peerMaintenanceWins(local: { on: boolean; version: number }, peer: [boolean, number] | undefined): boolean {
  if (!Array.isArray(peer) || typeof peer[0] !== 'boolean' || typeof peer[1] !== 'number' || !Number.isInteger(peer[1])) return false;
  const [on, version] = peer;
  return version > local.version || (version === local.version && on && !local.on);
}

/**
 * Whether an incoming body is a heartbeat (HTTP route and UDP handler alike). `from`, when given, is the
 * authenticated sender, which must be the node the heartbeat names.
 */
export function isHeartbeatMessage(body: unknown, from?: string): body is HeartbeatMessage {
  const m = body as Partial<HeartbeatMessage> | null;
  return !!m && typeof m.node === 'string' && typeof m.epoch === 'number' && typeof m.role === 'string' && (from === undefined || m.node === from);
}

export interface HeartbeatReply {
  state: HeartbeatMessage;
  /** The receiver accepts the sender as primary at its epoch (counts as a lease vote). */
  ack: boolean;
}

export interface PathState {
  url: string;
  lastOkAt: number | null;
  lastError: string | null;
  /** Requests on this path still waiting for an answer. */
  inFlight: number;
  sent: number;
  failed: number;
  degraded: boolean;
  /** Last time (monotonic) the peer's own heartbeat arrived on this path. */
  lastInboundAt: number | null;
  /** Beats not sent because the peer's heartbeats on this path already prove it (see `respondOnly`). */
  skipped: number;
}

/**
 * Sends a heartbeat on every path of a peer each interval and keeps per-path ages. An HTTP path whose
 * previous request is still in flight skips a beat instead of piling requests up; a UDP path keeps
 * beating (a lost datagram costs nothing to wait for) with a few requests outstanding at most.
 *
 * One exchange per path and interval proves both ends alive, so a standby whose primary's heartbeats
 * arrive on a path only answers them there (`respondOnly`): the primary drives the exchange and collects
 * its lease acknowledgements from the answers. As soon as the primary's heartbeats stop arriving on a
 * path for over 1.5 intervals, the standby beats on it again itself.
 */
export class PeerLink {
  readonly paths: PathState[];
  lastState: HeartbeatMessage | null = null;
  /** Last time anything was heard from the peer (request or reply), monotonic. */
  lastHeardAt: number | null = null;
  /**
   * The last signed answer (or request) of the peer that refused our protocol version or spoke one we do
   * not accept: it proves the peer alive, but nothing it says is read. Cleared by a compatible exchange.
   */
  incompatibility: { at: number; reason: string } | null = null;
  private readonly maxInFlight: number[];
  /** Beats waiting for an answer, per path. */
  private readonly flights: Set<{ ctrl: AbortController; sentAt: number }>[];

  constructor(
    readonly node: string,
    urls: string[],
    private readonly transport: PeerTransport,
    private readonly clock: Clock,
    private readonly opts: {
      intervalMs: number;
      timeoutMs: number;
      message: () => HeartbeatMessage;
      /** True while this node may leave the exchange to the peer on paths where its heartbeats arrive. */
      respondOnly?: () => boolean;
      /** Called with each reply and the send time of the request it answers. */
      onReply: (reply: HeartbeatReply, sentAt: number, url: string) => void;
    },
  ) {
    this.paths = urls.map((url) => ({ url, lastOkAt: null, lastError: null, inFlight: 0, sent: 0, failed: 0, degraded: false, lastInboundAt: null, skipped: 0 }));
    this.flights = urls.map(() => new Set());
    this.maxInFlight = urls.map((u) => (u.startsWith('udp:') ? Math.max(1, Math.ceil(opts.timeoutMs / opts.intervalMs)) : 1));
  }

  /**
   * Give up the beats that have waited timeoutMs (to within half an interval) for an answer. The link
   * enforces this deadline itself, on the tick: a timer per beat would wake the process up once more
   * per interval whenever the timeout is shorter than the interval, even though the answer came long
   * before. The transport's own timeout (a beat later) only catches beats of a link that stopped beating.
   */
  private expire(now: number): void {
    const limit = this.opts.timeoutMs - this.opts.intervalMs / 2;
    for (const [i, flights] of this.flights.entries()) {
      for (const f of flights) {
        if (now - f.sentAt < limit) continue;
        flights.delete(f);
        const path = this.paths[i];
        path.inFlight = flights.size;
        path.failed++;
        path.lastError = `${path.url}/peer/heartbeat: timeout of ${this.opts.timeoutMs}ms exceeded`;
        f.ctrl.abort();
      }
    }
  }

  /** Abandon every beat still waiting (the node stops). */
  stop(): void {
    for (const [i, flights] of this.flights.entries()) {
      for (const f of flights) f.ctrl.abort();
      flights.clear();
      this.paths[i].inFlight = 0;
    }
  }

  /** Send one heartbeat on every idle path now (the agent calls this once per heartbeat interval). */
  beat(): void {
    let msg: HeartbeatMessage | null = null;
    const responder = this.opts.respondOnly?.() ?? false;
    const now = this.clock.monotonicMs();
    this.expire(now);
    const fresh = now - this.opts.intervalMs * 1.5;
    for (const [i, path] of this.paths.entries()) {
      if (responder && path.lastInboundAt !== null && path.lastInboundAt > fresh) {
        path.skipped++;
        continue;
      }
      if (path.inFlight >= this.maxInFlight[i]) continue;
      // Built only when a path sends (a standby that only answers builds none).
      msg ??= this.opts.message();
      path.sent++;
      const flight = { ctrl: new AbortController(), sentAt: this.clock.monotonicMs() };
      const flights = this.flights[i];
      flights.add(flight);
      path.inFlight = flights.size;
      this.transport
        .post<HeartbeatReply>(path.url, '/peer/heartbeat', { ...msg, path: i }, this.opts.timeoutMs + this.opts.intervalMs, flight.ctrl.signal)
        .then((reply) => {
          const at = this.clock.monotonicMs();
          path.lastOkAt = at;
          path.lastError = null;
          this.lastHeardAt = at;
          this.incompatibility = null;
          if (reply && reply.state) {
            this.lastState = reply.state;
            this.opts.onReply(reply, flight.sentAt, path.url);
          }
        })
        .catch((err) => {
          if (flight.ctrl.signal.aborted) return; // counted by expire()
          path.failed++;
          path.lastError = errorMessage(err);
          // A signed refusal of our protocol version (or an answer in one we do not accept): the peer
          // is there, so the path answered, but it is incompatible rather than dead.
          if (err instanceof HaError && err.code === 'PEER_INCOMPATIBLE') {
            const at = this.clock.monotonicMs();
            path.lastOkAt = at;
            this.heardIncompatible(path.lastError, at);
          }
        })
        .finally(() => {
          if (flights.delete(flight)) path.inFlight = flights.size;
        });
    }
  }

  /** The peer was heard, authenticated, but speaking a protocol version this node does not accept. */
  heardIncompatible(reason: string, at = this.clock.monotonicMs()): void {
    this.lastHeardAt = at;
    this.incompatibility = { at, reason };
  }

  /** Why the peer is incompatible, if it was within `deadAfterMs` and nothing compatible came since. */
  incompatible(now: number, deadAfterMs: number): string | null {
    const i = this.incompatibility;
    return i && now - i.at < deadAfterMs ? i.reason : null;
  }

  /** Record a heartbeat the peer sent us (incoming direction). */
  heard(msg: HeartbeatMessage): void {
    const now = this.clock.monotonicMs();
    this.lastState = msg;
    this.lastHeardAt = now;
    this.incompatibility = null;
    const path = typeof msg.path === 'number' ? this.paths[msg.path] : undefined;
    if (path) {
      // The peer's heartbeat crossed this path: it is as good as an answered one.
      path.lastInboundAt = now;
      path.lastOkAt = now;
      path.lastError = null;
    }
  }

  /**
   * Path indices, the ones that answered within `deadAfterMs` first (in configuration order, so two
   * healthy paths never trade places), then the others, most recently heard first.
   */
  liveOrder(now: number, deadAfterMs: number): number[] {
    const idx = this.paths.map((_, i) => i);
    const live = (i: number) => {
      const at = this.paths[i].lastOkAt;
      return at !== null && now - at < deadAfterMs;
    };
    const rest = idx.filter((i) => !live(i)).sort((x, y) => (this.paths[y].lastOkAt ?? -Infinity) - (this.paths[x].lastOkAt ?? -Infinity));
    return [...idx.filter(live), ...rest];
  }

  pathAges(now: number): { url: string; ageMs: number | null }[] {
    return this.paths.map((p) => ({ url: p.url, ageMs: p.lastOkAt === null ? null : now - p.lastOkAt }));
  }

  /**
   * The peer is alive when a path answered, or the peer's own (authenticated, never replayed) heartbeat
   * arrived, within `deadAfterMs`. Hearing the peer counts even before our requests are answered, so a
   * node that starts while its peer's first requests are still waiting out their timeout does not call a
   * running peer dead.
   */
  alive(now: number, deadAfterMs: number): boolean {
    if (this.lastHeardAt !== null && now - this.lastHeardAt < deadAfterMs) return true;
    return this.paths.some((p) => p.lastOkAt !== null && now - p.lastOkAt < deadAfterMs);
  }
}
