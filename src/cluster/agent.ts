import type { HeartbeatMessage, HeartbeatReply } from './heartbeat.js';
import { PeerLink, heartbeatUrls } from './heartbeat.js';
import { errorMessage } from '../errors.js';
import { decide, leaseRemainingMs, type View } from './decide.js';
import { AdminInbox } from './agent/admin-inbox.js';
import { receiveVote } from './agent/election.js';
import { Executor } from './agent/execute.js';
import { HolderRecord } from './agent/holder-record.js';
import { Observer, buildView, inputSignature } from './agent/observe.js';
import { PeerExchange } from './agent/peer-exchange.js';
import { AgentState, hooksOf, vipCtx, type AgentCore, type AgentDeps, type AgentStats, type PeerConfig, type RequestRecord } from './agent/state.js';
import { agentStatus, lagMs, pathAgesMs } from './agent/status.js';
import { WitnessLink } from './agent/witness-link.js';
import type { Role } from '../ports.js';

export type { AgentDeps, RequestRecord } from './agent/state.js';

/** About how often the real VIP state is read back (reconciliation), in whole heartbeat ticks. */
const VIP_RECONCILE_MS = 1000;
/**
 * Longest pause between two decision cycles while nothing changes. A tick whose inputs (roles, epochs,
 * health, peer liveness, path states...) differ from the last cycle's runs one at once, and deadlines
 * (lease, peer silence, promise) wake the node exactly on time; this only bounds how late slow-moving
 * inputs (hold-down timers, data-path catch-up) are looked at.
 */
const SETTLED_CYCLE_MS = 1000;

/**
 * The agent: gathers a view once per cycle, calls decide(), executes the actions through ports, records
 * events. Only the agent changes role and epoch; admin calls enqueue requests the next cycle picks up.
 *
 * This file keeps the loop (start, stop, tick, cycle, deadlines); its parts live under ./agent/: the
 * shared state, the decision input (observe), the peer exchange, the election, the witness lease, the
 * data-holder record, the admin inbox, the executor and the status projection.
 */
export class Agent implements AgentCore {
  readonly startedAt: number;
  readonly s: AgentState;
  readonly peerLink: PeerLink | null;
  readonly peerCfg: PeerConfig | null;
  readonly holders: HolderRecord;
  readonly witness: WitnessLink;
  readonly inbox: AdminInbox;
  readonly observer: Observer;
  private readonly peers: PeerExchange;
  private readonly executor: Executor;
  private stopLoop: (() => void) | null = null;
  private vipChecking = false;
  private cancelDeadline: (() => void) | null = null;
  /**
   * The clock reading the last decision cycle decided on. A deadline after it has not been acted on yet,
   * even when it has passed by the time the cycle schedules its next wake-up (see scheduleDeadline).
   */
  private lastDecidedAt = Number.NEGATIVE_INFINITY;
  private cycling = false;
  private again = false;
  /** Inputs the last decision cycle saw (see inputSignature); a tick that sees others runs a cycle. */
  private cycleSignature = '';
  private lastReasonLogged = '';
  readonly stats: AgentStats = { cycles: 0, lastCycleMs: 0, failovers: 0, maxCycleMs: 0, tickLagMaxMs: 0 };

  constructor(readonly d: AgentDeps) {
    this.startedAt = d.clock.monotonicMs();
    this.s = new AgentState(this.startedAt);
    const cfg = d.config;
    this.peerCfg = cfg.peers[0] ?? null;
    this.holders = new HolderRecord(this);
    this.witness = new WitnessLink(this);
    this.inbox = new AdminInbox(this);
    this.peers = new PeerExchange(this);
    this.executor = new Executor(this);
    this.peerLink = this.peerCfg
      ? new PeerLink(this.peerCfg.node, heartbeatUrls(this.peerCfg), d.transport, d.clock, {
          intervalMs: cfg.timings.heartbeatMs,
          timeoutMs: cfg.timings.requestTimeoutMs,
          message: () => this.peers.message(),
          // A standby answers its primary's heartbeats instead of sending its own on the same paths.
          respondOnly: () => this.s.role === 'standby' && this.peerLink?.lastState?.role === 'primary',
          onReply: (reply, sentAt) => this.peers.onReply(reply, sentAt),
        })
      : null;
    this.observer = new Observer(this);
  }

  get role(): Role {
    return this.s.role;
  }

  get epoch(): number {
    return this.d.store.get().epoch;
  }

  /** Automation paused on this node: cluster-wide maintenance, or this node's own pause. */
  get maintenance(): boolean {
    const st = this.d.store.get();
    return st.maintenance || st.nodeMaintenance;
  }

  /** A planned move waits out timings.handoverDrainMs on this primary: /primary answers 503 meanwhile. */
  get draining(): boolean {
    return this.s.role === 'primary' && this.s.drain !== null;
  }

  /** Which pauses are on: 'cluster', 'node', both, or null. */
  get maintenanceScope(): 'cluster' | 'node' | 'cluster+node' | null {
    const st = this.d.store.get();
    return st.maintenance ? (st.nodeMaintenance ? 'cluster+node' : 'cluster') : st.nodeMaintenance ? 'node' : null;
  }

  get timings() {
    return this.d.config.timings;
  }

  get voters(): number {
    return 1 + this.d.config.peers.length + (this.d.coordinator ? 1 : 0);
  }

  get majority(): number {
    if (this.d.config.quorum.allowTwoNodeWithoutWitness && !this.d.coordinator) return 1;
    return Math.floor(this.voters / 2) + 1;
  }

  /** Local health: the service monitor and every data path's own service (the database...). */
  localHealthy(): boolean {
    return this.d.health.healthy() && hooksOf(this).every((h) => h.healthy?.() !== false);
  }

  localEscalated(): boolean {
    return this.d.health.escalated() || hooksOf(this).some((h) => h.escalated?.() === true);
  }

  /** The data-holder record is in force: a coordinator keeps it and some data path is synchronous. */
  holderRecordKept(): boolean {
    return this.holders.kept();
  }

  /** The record as last reported by the coordinator (null: unknown or none). */
  dataHolders(): string[] | null {
    return this.holders.list();
  }

  /** Why the peer is incompatible (alive, but refusing or speaking another protocol version), or null. */
  peerIncompatible(): string | null {
    return this.peerLink?.incompatible(this.d.clock.monotonicMs(), this.timings.deadAfterMs) ?? null;
  }

  /** Whether the coordinator has failed to answer for more than three lease times. */
  witnessUnreachable(): boolean {
    return this.witness.unreachable();
  }

  async start(): Promise<void> {
    this.d.bus.emit({ type: 'agent_started', severity: 'info', message: `agent started as ${this.s.role} at epoch ${this.epoch}` });
    // A crashed sidecar may have left the address on the interface: learn the real state first.
    await this.reconcileVip();
    // One timer drives the node: each heartbeat interval it beats on every path, runs a decision cycle
    // and, every few ticks, renews the witness lease (at least three renewals per lease) and reads the VIP
    // state back (about once a second, or once a tick with a slower heartbeat). Exact wake-ups
    // at lease and detection deadlines come on top (below), so an idle node wakes up rarely and still
    // fences on time.
    // While settled (a primary and a standby, nothing in flight, the last cycle took no action) a tick
    // runs a decision cycle only when an input changed, and at least every SETTLED_CYCLE_MS.
    const renewEvery = Math.max(1, Math.floor(this.timings.leaseMs / (3 * this.timings.heartbeatMs)));
    const settledEvery = Math.max(1, Math.round(SETTLED_CYCLE_MS / this.timings.heartbeatMs));
    // The VIP read-back rides on the same timer (no wake-up of its own), about once a second.
    const vipEvery = Math.max(1, Math.round(VIP_RECONCILE_MS / this.timings.heartbeatMs));
    let ticks = 0;
    const tick = (lateMs = 0) => {
      this.stats.tickLagMaxMs = Math.max(this.stats.tickLagMaxMs, lateMs);
      this.peerLink?.beat();
      if (ticks % renewEvery === 0) this.witness.renew(renewEvery);
      if (ticks > 0 && ticks % vipEvery === 0) void this.reconcileVip();
      if (ticks % settledEvery === 0 || !this.settled() || inputSignature(this) !== this.cycleSignature) this.kick();
      else this.scheduleDeadline();
      ticks++;
    };
    // The tick runs on the wall-clock grid of the heartbeat interval (Clock.every), so the node's
    // other periodic work (database status, probes, archive shipping) wakes up with it.
    this.stopLoop = this.d.clock.every(this.timings.heartbeatMs, tick);
    tick();
  }

  async stop(opts: { releaseVip?: boolean } = {}): Promise<void> {
    this.s.stopped = true;
    this.stopLoop?.();
    this.peerLink?.stop();
    this.witness.abort();
    this.cancelDeadline?.();
    while (this.cycling) await this.d.clock.sleep(5);
    if (opts.releaseVip !== false && this.d.vip) {
      await this.d.vip.release(vipCtx(this, 'shutdown')).catch(() => undefined);
      this.s.vipHeld = false;
    }
  }

  /** The largest heartbeat-timer delay since the last call (ms, 0 when on time), and start over. */
  takeTickLagMax(): number {
    const v = Math.max(0, this.stats.tickLagMaxMs);
    this.stats.tickLagMaxMs = 0;
    return v;
  }

  /** Run a decision cycle now (coalesces with one already running). */
  kick(): void {
    if (this.s.stopped) return;
    if (this.cycling) {
      this.again = true;
      return;
    }
    this.cycling = true;
    void this.cycle()
      .catch((err) => this.d.log?.error({ err: errorMessage(err) }, 'decision cycle failed'))
      .finally(() => {
        this.cycling = false;
        if (this.again && !this.s.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /**
   * Read whether this node really holds the VIP (an address left by a crash, removed by hand...). The
   * next cycle then releases or re-acquires it; the check is cheap but not free, hence its own pace.
   */
  private async reconcileVip(): Promise<void> {
    const vip = this.d.vip;
    if (!vip || this.vipChecking || this.s.stopped) return;
    this.vipChecking = true;
    try {
      const held = await vip.held();
      if (held !== this.s.vipHeld) {
        this.d.bus.emit({ type: 'vip_reconciled', severity: 'warning', message: `${vip.describe()} is ${held ? 'held' : 'not held'} on this node although the agent believed otherwise` });
        this.s.vipHeld = held;
        this.kick();
      }
    } catch (err) {
      this.d.log?.warn({ err: errorMessage(err) }, 'cannot read the VIP state');
    } finally {
      this.vipChecking = false;
    }
  }

  /** Nothing is under way: a steady primary or standby whose last cycle decided to do nothing. */
  private settled(): boolean {
    const s = this.s;
    return (
      (s.role === 'primary' || s.role === 'standby') &&
      !this.cycling &&
      s.lastDecision !== null &&
      s.lastDecision.actions.length === 0 &&
      s.election === null &&
      s.handover === null &&
      s.takeoverOffer === null &&
      this.inbox.pending === 0
    );
  }

  // ---- inputs from the API -------------------------------------------------------------------

  /** Incoming heartbeat from the peer. */
  receiveHeartbeat(msg: HeartbeatMessage): HeartbeatReply {
    return this.peers.receive(msg);
  }

  /**
   * An authenticated request from `node` stated this protocol version and release (HTTP or UDP); `problem`
   * says why this node refused it (an incompatible peer is alive, never dead).
   */
  peerProtocol(node: string, protocol: number, release: string | null, problem: string | null): void {
    if (node !== this.peerCfg?.node) return;
    this.peers.noteVersion(protocol, release, problem);
    if (problem) this.kick();
  }

  /** The peer's protocol version and release as last stated, and whether this node accepts it. */
  get peerVersion(): { protocol: number; release: string | null; problem: string | null } | null {
    return this.peers.peerVersion;
  }

  /** The peer asks for our vote for `epoch`. */
  receiveVote(candidate: string, epoch: number): { granted: boolean; reason: string; epoch: number; handover?: boolean } {
    return receiveVote(this, candidate, epoch);
  }

  /** The peer hands the primary role to us. */
  receiveTakeover(from: string, epoch: number, reason: string = 'switchover'): { accepted: boolean; reason: string } {
    return this.peers.receiveTakeover(from, epoch, reason);
  }

  /** Queue an admin request; the next cycle decides it. */
  request(kind: 'switchover' | 'failback' | 'promote', to: string | null = null): RequestRecord {
    return this.inbox.request(kind, to);
  }

  setMaintenance(on: boolean, scope: 'cluster' | 'node' = 'cluster'): RequestRecord {
    return this.inbox.setMaintenance(on, scope);
  }

  getRequest(id: string): RequestRecord | undefined {
    return this.inbox.get(id);
  }

  /** Role as shown to the world. */
  reportedRole(): Role {
    return this.s.role;
  }

  // ---- view and cycle ------------------------------------------------------------------------

  buildView(): View {
    return buildView(this);
  }

  private async cycle(): Promise<void> {
    const t0 = this.d.clock.monotonicMs();
    this.cycleSignature = inputSignature(this);
    const view = buildView(this);
    this.d.health.setPaused?.(view.maintenance);
    this.lastDecidedAt = view.now;
    this.observer.observe(view);
    const decision = decide(view);
    this.s.lastDecision = decision;
    // Log what was decided when it changes; the pauses between election attempts are not news.
    if (decision.reason !== this.lastReasonLogged && !decision.reason.startsWith('no action') && !decision.reason.includes('next election attempt')) {
      const since = this.witness.failingSince;
      this.d.log?.info({ role: this.s.role, epoch: this.epoch, ...(since !== null ? { witness: this.d.coordinator?.describe(), witnessSilentMs: Math.round(view.now - since) } : {}) }, decision.reason);
      this.lastReasonLogged = decision.reason;
    }
    for (const action of decision.actions) {
      if (this.s.stopped) break;
      await this.executor.execute(action, view);
    }
    if (this.s.role === 'standby' && !this.s.stopped) await this.executor.followIfKnown();
    this.scheduleDeadline();
    const ms = this.d.clock.monotonicMs() - t0;
    this.stats.cycles++;
    this.stats.lastCycleMs = ms;
    this.stats.maxCycleMs = Math.max(this.stats.maxCycleMs, ms);
  }

  /**
   * Wake up exactly when something can change between interval ticks: the primary's lease running
   * out (fence on time), the peer's freshest path crossing dead-after, the promise to the old primary
   * expiring (campaign on time).
   *
   * A deadline counts when the last decision has not seen it (after lastDecidedAt), not only when it
   * is still ahead: a cycle decides on the clock reading it started with, so a deadline that falls
   * while it runs (or a timer that fires a fraction of a millisecond early, as Node's may) must still
   * wake the next cycle, at once, instead of waiting for the next heartbeat-paced tick.
   */
  private scheduleDeadline(): void {
    const s = this.s;
    if (s.stopped) return;
    const t = this.timings;
    const now = this.d.clock.monotonicMs();
    let next = Number.POSITIVE_INFINITY;
    const consider = (at: number) => {
      if (at > this.lastDecidedAt && at < next) next = at;
    };
    if (s.role === 'primary') {
      const left = leaseRemainingMs({ now, leaseAcks: s.leaseAcks, timings: t, majority: this.majority });
      if (Number.isFinite(left)) consider(now + left + 1);
    } else {
      if (s.promise) consider(s.promise.until + 1);
      if (s.campaignRetryAt !== null) consider(s.campaignRetryAt);
      // The freshest path going silent is the peer's death.
      let freshest: number | null = null;
      for (const p of this.peerLink?.paths ?? []) if (p.lastOkAt !== null && (freshest === null || p.lastOkAt > freshest)) freshest = p.lastOkAt;
      if (freshest !== null) consider(freshest + t.deadAfterMs + 1);
    }
    // Ticks call this every interval, so only a deadline before the next tick needs a timer.
    if (!Number.isFinite(next) || next - now >= t.heartbeatMs) return;
    this.cancelDeadline?.();
    this.cancelDeadline = this.d.clock.timeout(Math.max(0, Math.ceil(next - now)), () => {
      this.cancelDeadline = null;
      this.kick();
    });
  }

  // ---- status --------------------------------------------------------------------------------

  status(): Record<string, unknown> {
    return agentStatus(this, this.peers);
  }

  /** Per-path heartbeat ages for metrics. */
  pathAgesMs(): { peer: string; url: string; ageMs: number | null }[] {
    return pathAgesMs(this);
  }

  /** Replication lag (ms) reported by data-path hooks, the largest one, for /standby?max_lag_ms. */
  lagMs(): number | null {
    return lagMs(this);
  }

  caughtUp(): boolean {
    return hooksOf(this).every((h) => !h.caughtUp || h.caughtUp());
  }
}
