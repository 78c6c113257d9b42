import type { LeaseAnswer } from '../../ports.js';
import { errorMessage } from '../../errors.js';
import type { AgentCore } from './state.js';

/**
 * The primary's lease at the coordinator (witness): renewal on the heartbeat tick, and whether the
 * coordinator answers at all (a warning after three lease times of silence, once).
 */
export class WitnessLink {
  /** Since when (monotonic) the coordinator has not answered (null: it answers). */
  failingSince: number | null = null;
  private unreachableReported = false;
  private last: { at: number; answer: unknown; error: string | null } | null = null;
  /** The lease renewal waiting for the witness's answer, if any. */
  private req: { ctrl: AbortController; sentAt: number } | null = null;

  constructor(private readonly c: AgentCore) {}

  /** Every coordinator answer carries the record and proves the coordinator answers. */
  answered(a: LeaseAnswer): void {
    const c = this.c;
    // Any answer (an election's grant, a holder-record update, a renewal) is the latest word in /status.
    this.last = { at: c.d.clock.monotonicMs(), answer: a, error: null };
    c.holders.note(a);
    if (this.failingSince !== null && this.unreachableReported) {
      c.d.bus.emit({ type: 'witness_reachable', severity: 'info', message: `${c.d.coordinator?.describe() ?? 'the coordinator'} answers again`, details: {} });
    }
    this.failingSince = null;
    this.unreachableReported = false;
  }

  failed(err: unknown): void {
    const c = this.c;
    const now = c.d.clock.monotonicMs();
    this.failingSince ??= now;
    const silentMs = now - this.failingSince;
    if (!this.unreachableReported && silentMs >= 3 * c.timings.leaseMs) {
      this.unreachableReported = true;
      c.d.bus.emit({
        type: 'witness_unreachable',
        severity: 'warning',
        message: `${c.d.coordinator?.describe() ?? 'the coordinator'} has not answered for ${Math.round(silentMs)} ms (${errorMessage(err)}): a failover now needs it back; the primary keeps its lease while the peer renews it`,
        details: { silentMs: Math.round(silentMs) },
      });
      c.d.log?.warn({ code: 'WITNESS_UNREACHABLE', witness: c.d.coordinator?.describe() }, errorMessage(err));
    }
  }

  /** Whether the coordinator has failed to answer for more than three lease times. */
  unreachable(): boolean {
    return this.unreachableReported;
  }

  /** Give up the renewal in flight (the node stops). */
  abort(): void {
    this.req?.ctrl.abort();
    this.req = null;
  }

  /**
   * Renew the witness lease (on the heartbeat tick). A renewal unanswered for requestTimeoutMs (to
   * within half a heartbeat) is given up here and sent again, rather than by a timer of its own: such a
   * timer, shorter than the heartbeat, would wake the primary up once more per interval although the
   * answer came within milliseconds. The transport's own timeout is a backstop only.
   */
  renew(renewEveryTicks: number): void {
    const c = this.c;
    const coord = c.d.coordinator;
    // A primary renews, and so does a node handing its data over: its lease must hold the witness until
    // the role is offered, or the peer could win an election with the witness alone before that.
    if (!coord || (c.s.role !== 'primary' && !c.s.handingDataOver()) || c.s.stopped) return;
    const t = c.timings;
    const sentAt = c.d.clock.monotonicMs();
    const waiting = this.req;
    if (waiting) {
      if (sentAt - waiting.sentAt < t.requestTimeoutMs - t.heartbeatMs / 2) return;
      this.req = null;
      const error = `${coord.describe()}: timeout of ${t.requestTimeoutMs}ms exceeded`;
      this.last = { at: sentAt, answer: null, error };
      waiting.ctrl.abort();
      // A coordinator that hangs (a stopped process, an etcd without quorum) fails as surely as one that
      // refuses connections: it counts toward "unreachable" too.
      this.failed(new Error(error));
    }
    const req = { ctrl: new AbortController(), sentAt };
    this.req = req;
    const epoch = c.epoch;
    const backstopMs = Math.max(t.requestTimeoutMs, t.heartbeatMs * renewEveryTicks) + t.heartbeatMs;
    coord
      .acquire(c.d.config.node, epoch, t.leaseMs, backstopMs, req.ctrl.signal)
      .then((a) => {
        this.answered(a);
        if (a.granted && epoch === c.epoch && c.s.role === 'primary') {
          c.s.leaseAcks.witness = Math.max(c.s.leaseAcks.witness ?? 0, sentAt);
          c.holders.reconcile(a);
        } else if (a.epoch > c.epoch) {
          c.s.witnessEpoch = a.epoch;
          c.kick();
        }
      })
      .catch((err) => {
        if (req.ctrl.signal.aborted) return; // given up above (or the node stopped)
        this.last = { at: c.d.clock.monotonicMs(), answer: null, error: errorMessage(err) };
        this.failed(err);
      })
      .finally(() => {
        if (this.req === req) this.req = null;
      });
  }

  /**
   * How the coordinator answers, as far as this node knows: `ok` (its last call was answered), `failing`
   * (the last call failed), `unreachable` (silent for three lease times: a failover needs it back) or
   * `unknown` (not asked yet: a standby asks only to take over).
   */
  health(): 'ok' | 'failing' | 'unreachable' | 'unknown' {
    if (this.unreachableReported) return 'unreachable';
    if (!this.last) return 'unknown';
    return this.last.error ? 'failing' : 'ok';
  }

  /** The witness block of /status: the coordinator's kind (witness or etcd), where it is, its health. */
  status(now: number): { kind: 'witness' | 'etcd'; url: string; health: ReturnType<WitnessLink['health']>; last_answer: unknown; last_error: string | null; age_ms: number | null } | null {
    const coord = this.c.d.coordinator;
    if (!coord) return null;
    return {
      kind: this.c.d.config.coordinator?.kind ?? 'witness',
      url: coord.describe(),
      health: this.health(),
      last_answer: this.last?.answer ?? null,
      last_error: this.last?.error ?? null,
      age_ms: this.last ? Math.round(now - this.last.at) : null,
    };
  }
}
