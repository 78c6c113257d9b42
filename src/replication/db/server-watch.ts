import type { Clock, DbStatus, HaEvent } from '../../ports.js';
import { evaluateProbe, initialPolicyState, type PolicyState } from '../../monitor/policy.js';
import type { PolicyConfig } from '../../monitor/config.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';

/**
 * The local server as a monitored service. On the primary a dead server is restarted under the
 * restart policy (N restarts within a window, with back-off); when that fails the path escalates and
 * the agent hands over. A standby's dead server is started again by following the primary anew.
 * DbDataPath feeds it every status read (its tick) and keeps the role state.
 */
export class ServerWatch {
  /** The local server as a monitored service (restart on the primary, then escalate). */
  private monitor: PolicyState = initialPolicyState();
  private readonly policy: PolicyConfig;
  private restarting = false;
  /** A standby whose server died was seen (event once per incident). */
  private standbyDownReported = false;

  constructor(
    private readonly o: {
      restart: DbConfig['restart'];
      db: Pick<ManagedDatabase, 'start'>;
      clock: Clock;
      /** DbDataPath's background queue: the restart runs there, one long job at a time. */
      background(what: string, fn: () => Promise<void>): void;
      emit(type: string, severity: HaEvent['severity'], message: string, details?: Record<string, unknown>): void;
    },
  ) {
    this.policy = {
      failuresBeforeAction: 2,
      maxRestarts: o.restart.maxRestarts,
      windowMs: o.restart.windowMs,
      backoff: { baseMs: 1000, maxMs: 10_000 },
      recoverAfter: 2,
    };
  }

  /** False while the server is down (restarting, or given up on); meaningful on the primary. */
  get healthy(): boolean {
    return this.monitor.healthy;
  }

  /** The server could not be restarted within the policy; meaningful on the primary. */
  get escalated(): boolean {
    return this.monitor.escalated;
  }

  /** A new term as primary starts with a clean incident history. */
  reset(): void {
    this.monitor = initialPolicyState();
  }

  /** On the primary (once it is `ready`): a dead server is restarted, then escalated. */
  primary(s: DbStatus | null, ready: boolean): void {
    const up = !!s?.running;
    if (!ready || this.restarting) return;
    const ok = up && s?.mode === 'primary';
    const { state, decision } = evaluateProbe(this.monitor, ok, this.o.clock.monotonicMs(), this.policy, 'active');
    this.monitor = state;
    if (decision.incidentOpened) this.o.emit('db.down', 'critical', `database on the primary is not running: ${decision.reason}`);
    if (decision.action === 'restart') {
      this.restarting = true;
      const t0 = this.o.clock.monotonicMs();
      this.o.background('restart', async () => {
        try {
          await this.o.db.start();
          this.o.emit('db.restarted', 'warning', `database restarted on the primary in ${Math.round(this.o.clock.monotonicMs() - t0)} ms (${decision.reason})`);
        } finally {
          this.restarting = false;
        }
      });
    } else if (decision.action === 'escalate') {
      this.o.emit('db.escalated', 'critical', `database on the primary could not be restarted: ${decision.reason}`);
    } else if (decision.action === 'recovered') {
      this.o.emit('db.recovered', 'info', `database on the primary serves again: ${decision.reason}`);
    }
  }

  /**
   * Standby: a server that died after following is brought back by following again. `mayFollowAgain`
   * tells whether the path followed a primary, has nothing in flight and holds data. True: the caller
   * forgets the primary it followed, so the next onFollow starts the server again.
   */
  standby(s: DbStatus | null, mayFollowAgain: () => boolean): boolean {
    const up = !!s?.running;
    if (!up && mayFollowAgain()) {
      if (!this.standbyDownReported) {
        this.standbyDownReported = true;
        this.o.emit('db.down', 'warning', 'database on the standby is not running: starting it again as a standby of the primary');
      }
      return true;
    } else if (up && this.standbyDownReported && s?.mode === 'standby') {
      this.standbyDownReported = false;
      this.o.emit('db.recovered', 'info', 'database on the standby runs again');
    }
    return false;
  }
}
