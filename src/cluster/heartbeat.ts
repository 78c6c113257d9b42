import type { Clock, PeerTransport, Role } from '../ports.js';
import { errorMessage } from '../errors.js';

/** What a sidecar tells its peer on every heartbeat. */
export interface HeartbeatMessage {
  node: string;
  role: Role;
  epoch: number;
  healthy: boolean;
  /** Fully caught up on every data path (meaningful on a standby). */
  caughtUp: boolean;
  /** Epoch offered to the peer in a graceful handover, or null. */
  takeoverOffer: number | null;
  /** Why the takeover is offered (switchover, failback, escalation). */
  takeoverReason?: string;
  sentAt: number;
  /** Data-path summaries (lag, positions) for the peer's status page. */
  replication?: Record<string, unknown>;
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
  inFlight: boolean;
  sent: number;
  failed: number;
  degraded: boolean;
}

/**
 * Sends a heartbeat on every path of a peer each interval and keeps per-path round-trip ages. A path
 * whose previous request is still in flight skips a beat instead of piling requests up.
 */
export class PeerLink {
  readonly paths: PathState[];
  lastState: HeartbeatMessage | null = null;
  /** Last time anything was heard from the peer (request or reply), monotonic. */
  lastHeardAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly node: string,
    urls: string[],
    private readonly transport: PeerTransport,
    private readonly clock: Clock,
    private readonly opts: {
      intervalMs: number;
      timeoutMs: number;
      message: () => HeartbeatMessage;
      /** Called with each reply and the send time of the request it answers. */
      onReply: (reply: HeartbeatReply, sentAt: number, url: string) => void;
    },
  ) {
    this.paths = urls.map((url) => ({ url, lastOkAt: null, lastError: null, inFlight: false, sent: 0, failed: 0, degraded: false }));
  }

  start(): void {
    if (this.timer) return;
    this.beat();
    this.timer = setInterval(() => this.beat(), this.opts.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Send one heartbeat on every idle path now. */
  beat(): void {
    const msg = this.opts.message();
    for (const path of this.paths) {
      if (path.inFlight) continue;
      path.inFlight = true;
      path.sent++;
      const sentAt = this.clock.monotonicMs();
      this.transport
        .post<HeartbeatReply>(path.url, '/peer/heartbeat', msg, this.opts.timeoutMs)
        .then((reply) => {
          const now = this.clock.monotonicMs();
          path.lastOkAt = now;
          path.lastError = null;
          this.lastHeardAt = now;
          if (reply && reply.state) {
            this.lastState = reply.state;
            this.opts.onReply(reply, sentAt, path.url);
          }
        })
        .catch((err) => {
          path.failed++;
          path.lastError = errorMessage(err);
        })
        .finally(() => {
          path.inFlight = false;
        });
    }
  }

  /** Record a heartbeat the peer sent us (incoming direction). */
  heard(msg: HeartbeatMessage): void {
    this.lastState = msg;
    this.lastHeardAt = this.clock.monotonicMs();
  }

  pathAges(now: number): { url: string; ageMs: number | null }[] {
    return this.paths.map((p) => ({ url: p.url, ageMs: p.lastOkAt === null ? null : now - p.lastOkAt }));
  }

  alive(now: number, deadAfterMs: number): boolean {
    return this.paths.some((p) => p.lastOkAt !== null && now - p.lastOkAt < deadAfterMs);
  }
}
