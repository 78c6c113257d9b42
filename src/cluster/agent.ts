import { randomUUID } from 'node:crypto';
import type { Clock, Coordinator, HealthSource, HookContext, LeaseAnswer, PeerTransport, Role, RoleHooks, Vip } from '../ports.js';
import { errorMessage } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { ClusterConfig } from '../config/schema.js';
import { decide, decideVote, leaseRemainingMs, notAHolder, validLeaseVotes, type Action, type AdminRequest, type Decision, type View } from './decide.js';
import type { EpochStore } from './epoch-store.js';
import { PeerLink, heartbeatUrls, type HeartbeatMessage, type HeartbeatReply } from './heartbeat.js';
import { everyOnGrid, type GridTimer } from '../util/cadence.js';

export interface RequestRecord {
  id: string;
  kind: AdminRequest['kind'] | 'maintenance';
  state: 'pending' | 'running' | 'done' | 'refused';
  message: string;
  createdAt: string;
}

export interface AgentDeps {
  config: ClusterConfig;
  clock: Clock;
  store: EpochStore;
  bus: EventBus;
  transport: PeerTransport;
  coordinator: Coordinator | null;
  vip: Vip | null;
  health: HealthSource;
  hooks?: RoleHooks[];
  log?: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
}

/** The timings both nodes must share; heartbeats carry them (as a tuple) so a mismatch is reported. */
interface TimingsTriple {
  heartbeatMs: number;
  deadAfterMs: number;
  leaseMs: number;
}
const sameTimings = (x: TimingsTriple, y: TimingsTriple) => x.heartbeatMs === y.heartbeatMs && x.deadAfterMs === y.deadAfterMs && x.leaseMs === y.leaseMs;
const formatTimings = (t: TimingsTriple) => `${t.heartbeatMs} / ${t.deadAfterMs} / ${t.leaseMs}`;

/** About how often the real VIP state is read back (reconciliation), in whole heartbeat ticks. */
const VIP_RECONCILE_MS = 1000;
/** Earliest retry of a campaign the witness refused, however little of the old lease was left. */
const MIN_CAMPAIGN_RETRY_MS = 5;
/**
 * Longest pause between two decision cycles while nothing changes. A tick whose inputs (roles, epochs,
 * health, peer liveness, path states...) differ from the last cycle's runs one at once, and deadlines
 * (lease, peer silence, promise) wake the node exactly on time; this only bounds how late slow-moving
 * inputs (hold-down timers, data-path catch-up) are looked at.
 */
const SETTLED_CYCLE_MS = 1000;

/** One record per failover / switchover / fail-back with timings, filled in as it happens. */
interface TakeoverTiming {
  kind: 'failover' | 'switchover' | 'failback' | 'bootstrap' | 'recovery';
  detectMs: number | null;
  campaignStartedAt: number;
  epochBefore: number;
  /** Data-path status (lag, objects and files behind) when the takeover began. */
  data: Record<string, unknown>;
}

/**
 * The agent: gathers a view once per cycle, calls decide(), executes the actions through ports, records
 * events. Only the agent changes role and epoch; admin calls enqueue requests the next cycle picks up.
 */
export class Agent {
  role: Role = 'starting';
  readonly startedAt: number;
  private readonly peerLink: PeerLink | null;
  private readonly peerCfg: ClusterConfig['peers'][number] | null;
  private leaseAcks: Record<string, number> = {};
  private witnessEpoch: number | null = null;
  /** The data-holder record as the coordinator last reported it (null: unknown, or none kept). */
  private holders: string[] | null = null;
  /** Per synchronous data path: whether it says the standby holds every acknowledged write. */
  private holderClaims = new Map<string, boolean>();
  /** The record publication in flight, so claims are sent one after the other. */
  private holderPublish: Promise<unknown> = Promise.resolve();
  /** Since when (monotonic) the coordinator has not answered (null: it answers). */
  private witnessFailingSince: number | null = null;
  private witnessUnreachableReported = false;
  /** A `not-a-holder` refusal was reported (event) for this record. */
  private notHolderReported: string | null = null;
  private witnessLast: { at: number; answer: unknown; error: string | null } | null = null;
  /** The lease renewal waiting for the witness's answer, if any. */
  private witnessReq: { ctrl: AbortController; sentAt: number } | null = null;
  private promise: { node: string; until: number } | null = null;
  private election: View['election'] = null;
  private lastCampaignAt: number | null = null;
  /** See View.campaignRetryAt: set from the witness's answer to a refused campaign. */
  private campaignRetryAt: number | null = null;
  private handover: View['handover'] = null;
  private requests: AdminRequest[] = [];
  private readonly requestLog: RequestRecord[] = [];
  private takeoverOffer: number | null = null;
  /** The peer's timings as its heartbeats last reported them (notePeerTimings). */
  private peerTimings: TimingsTriple | null = null;
  private takeoverReason: 'switchover' | 'failback' = 'switchover';
  private handoverReason: 'switchover' | 'failback' | 'escalation' = 'switchover';
  /** When a handover this node started was last aborted by a data path (monotonic ms), or null. */
  private handoverAbortedAt: number | null = null;
  /** Since when (monotonic) the peer has been a healthy, caught-up standby (automatic fail-back). */
  private peerReadySince: number | null = null;
  private vipHeld = false;
  private lastDecision: Decision | null = null;
  private lastReasonLogged = '';
  private loopTimer: GridTimer | null = null;
  private vipChecking = false;
  private deadlineTimer: NodeJS.Timeout | null = null;
  /**
   * The clock reading the last decision cycle decided on. A deadline after it has not been acted on yet,
   * even when it has passed by the time the cycle schedules its next wake-up (see scheduleDeadline).
   */
  private lastDecidedAt = Number.NEGATIVE_INFINITY;
  private cycling = false;
  private again = false;
  /** Inputs the last decision cycle saw (see inputSignature); a tick that sees others runs a cycle. */
  private cycleSignature = '';
  private hbCache: { at: number; key: string; msg: HeartbeatMessage } | null = null;
  private stopped = false;
  private peerWasAlive: boolean | null = null;
  private peerDeadSince: number | null = null;
  /** Silence (ms) after which the peer was declared dead, at the last alive -> dead transition. */
  private lastDetectMs: number | null = null;
  private lastPrimarySeenAt: number;
  private pathDegraded: boolean[] = [];
  private timing: TakeoverTiming | null = null;
  /**
   * tickLagMaxMs: the largest delay of the heartbeat timer behind its schedule since the metrics last
   * read it (takeTickLagMax) — event-loop lag as the heartbeats feel it, measured on a wake-up the node
   * has anyway.
   */
  readonly stats = { cycles: 0, lastCycleMs: 0, failovers: 0, maxCycleMs: 0, tickLagMaxMs: 0 };

  constructor(private readonly d: AgentDeps) {
    this.startedAt = d.clock.monotonicMs();
    this.lastPrimarySeenAt = this.startedAt;
    const cfg = d.config;
    this.peerCfg = cfg.peers[0] ?? null;
    this.peerLink = this.peerCfg
      ? new PeerLink(this.peerCfg.node, heartbeatUrls(this.peerCfg), d.transport, d.clock, {
          intervalMs: cfg.timings.heartbeatMs,
          timeoutMs: cfg.timings.requestTimeoutMs,
          message: () => this.heartbeatMessage(),
          // A standby answers its primary's heartbeats instead of sending its own on the same paths.
          respondOnly: () => this.role === 'standby' && this.peerLink?.lastState?.role === 'primary',
          onReply: (reply, sentAt) => this.onHeartbeatReply(reply, sentAt),
        })
      : null;
    this.pathDegraded = this.peerCfg ? this.peerCfg.urls.map(() => false) : [];
  }

  get epoch(): number {
    return this.d.store.get().epoch;
  }

  get maintenance(): boolean {
    return this.d.store.get().maintenance;
  }

  /** Local health: the service monitor and every data path's own service (the database...). */
  private localHealthy(): boolean {
    return this.d.health.healthy() && (this.d.hooks ?? []).every((h) => h.healthy?.() !== false);
  }

  private localEscalated(): boolean {
    return this.d.health.escalated() || (this.d.hooks ?? []).some((h) => h.escalated?.() === true);
  }

  /** The data-holder record is in force: a coordinator keeps it and some data path is synchronous. */
  holderRecordKept(): boolean {
    return !!this.d.coordinator && (this.d.hooks ?? []).some((h) => h.syncMode?.() === true);
  }

  /** The record as last reported by the coordinator (null: unknown or none). */
  dataHolders(): string[] | null {
    return this.holders ? [...this.holders] : null;
  }

  /** Every coordinator answer carries the record and proves the coordinator answers. */
  private noteCoordinatorAnswer(a: LeaseAnswer): void {
    if (a.holders !== undefined) this.holders = a.holders ? [...a.holders] : null;
    if (this.witnessFailingSince !== null && this.witnessUnreachableReported) {
      this.d.bus.emit({ type: 'witness_reachable', severity: 'info', message: `${this.d.coordinator?.describe() ?? 'the coordinator'} answers again`, details: {} });
    }
    this.witnessFailingSince = null;
    this.witnessUnreachableReported = false;
  }

  private noteCoordinatorFailure(err: unknown): void {
    const now = this.d.clock.monotonicMs();
    this.witnessFailingSince ??= now;
    const silentMs = now - this.witnessFailingSince;
    if (!this.witnessUnreachableReported && silentMs >= 3 * this.timings.leaseMs) {
      this.witnessUnreachableReported = true;
      this.d.bus.emit({
        type: 'witness_unreachable',
        severity: 'warning',
        message: `${this.d.coordinator?.describe() ?? 'the coordinator'} has not answered for ${Math.round(silentMs)} ms (${errorMessage(err)}): a failover now needs it back; the primary keeps its lease while the peer renews it`,
        details: { silentMs: Math.round(silentMs) },
      });
      this.d.log?.warn({ code: 'WITNESS_UNREACHABLE', witness: this.d.coordinator?.describe() }, errorMessage(err));
    }
  }

  /** Whether the coordinator has failed to answer for more than three lease times. */
  witnessUnreachable(): boolean {
    return this.witnessUnreachableReported;
  }

  /** The record this primary should publish: itself, plus the peer when every synchronous path says it holds everything. */
  private desiredHolders(): string[] {
    const self = this.d.config.node;
    const peer = this.peerCfg?.node;
    const sync = (this.d.hooks ?? []).filter((h) => h.syncMode?.() === true);
    const all = !!peer && sync.length > 0 && sync.every((h) => this.holderClaims.get(h.name) === true);
    return all && peer ? [self, peer].sort() : [self];
  }

  /** Publish the record (one request at a time); true once the coordinator's record is `want`. */
  private publishHolders(want: string[] | null): Promise<boolean> {
    const c = this.d.coordinator;
    if (!c) return Promise.resolve(true);
    const run = async (): Promise<boolean> => {
      if (this.role !== 'primary' && !this.handingDataOver() && !this.handover) return false;
      const wanted = want ?? null;
      if (JSON.stringify(this.holders) === JSON.stringify(wanted)) return true;
      const before = this.holders;
      try {
        const a = await c.setHolders(this.d.config.node, this.epoch, wanted, Math.max(this.timings.requestTimeoutMs, 2 * this.timings.heartbeatMs));
        this.noteCoordinatorAnswer(a);
        if (!a.granted) return false;
        this.d.bus.emit({
          type: 'holders_changed',
          severity: wanted && wanted.length === 1 ? 'warning' : 'info',
          message: wanted === null ? 'data-holder record cleared: no data path is synchronous' : `data-holder record: ${wanted.join(', ')} hold every acknowledged write`,
          details: { before, after: wanted },
        });
        return true;
      } catch (err) {
        this.noteCoordinatorFailure(err);
        return false;
      }
    };
    const p = this.holderPublish.then(run, run);
    this.holderPublish = p.catch(() => undefined);
    return p;
  }

  /** HolderControl.claim for the data paths. */
  private readonly claimHolders = async (path: string, peerHolds: boolean): Promise<boolean> => {
    this.holderClaims.set(path, peerHolds);
    if (!this.d.coordinator) return true;
    if (this.role !== 'primary') return false;
    const want = this.desiredHolders();
    const ok = await this.publishHolders(want);
    // Another path may still keep the peer out: this path's claim is recorded either way.
    return ok && (!peerHolds || want.length > 1 || JSON.stringify(this.holders) === JSON.stringify(want));
  };

  private get timings() {
    return this.d.config.timings;
  }

  get voters(): number {
    return 1 + this.d.config.peers.length + (this.d.coordinator ? 1 : 0);
  }

  get majority(): number {
    if (this.d.config.quorum.allowTwoNodeWithoutWitness && !this.d.coordinator) return 1;
    return Math.floor(this.voters / 2) + 1;
  }

  async start(): Promise<void> {
    this.d.bus.emit({ type: 'agent_started', severity: 'info', message: `agent started as ${this.role} at epoch ${this.epoch}` });
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
      if (ticks % renewEvery === 0) this.renewWitness(renewEvery);
      if (ticks > 0 && ticks % vipEvery === 0) void this.reconcileVip();
      if (ticks % settledEvery === 0 || !this.settled() || this.inputSignature() !== this.cycleSignature) this.kick();
      else this.scheduleDeadline();
      ticks++;
    };
    // The tick runs on the wall-clock grid of the heartbeat interval (util/cadence.ts), so the node's
    // other periodic work (database status, probes, archive shipping) wakes up with it.
    this.loopTimer = everyOnGrid(this.timings.heartbeatMs, tick);
    tick();
  }

  async stop(opts: { releaseVip?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.loopTimer?.stop();
    this.peerLink?.stop();
    this.witnessReq?.ctrl.abort();
    this.witnessReq = null;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    while (this.cycling) await this.d.clock.sleep(5);
    if (opts.releaseVip !== false && this.d.vip) {
      await this.d.vip.release(this.vipCtx('shutdown')).catch(() => undefined);
      this.vipHeld = false;
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
    if (this.stopped) return;
    if (this.cycling) {
      this.again = true;
      return;
    }
    this.cycling = true;
    void this.cycle()
      .catch((err) => this.d.log?.error({ err: errorMessage(err) }, 'decision cycle failed'))
      .finally(() => {
        this.cycling = false;
        if (this.again && !this.stopped) {
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
    if (!vip || this.vipChecking || this.stopped) return;
    this.vipChecking = true;
    try {
      const held = await vip.held();
      if (held !== this.vipHeld) {
        this.d.bus.emit({ type: 'vip_reconciled', severity: 'warning', message: `${vip.describe()} is ${held ? 'held' : 'not held'} on this node although the agent believed otherwise` });
        this.vipHeld = held;
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
    return (
      (this.role === 'primary' || this.role === 'standby') &&
      !this.cycling &&
      this.lastDecision !== null &&
      this.lastDecision.actions.length === 0 &&
      this.election === null &&
      this.handover === null &&
      this.takeoverOffer === null &&
      this.requests.length === 0
    );
  }

  /**
   * The inputs of decide() that can change between cycles without an event of their own, in one string:
   * own role, epoch, maintenance, VIP, witness epoch, health; the peer's liveness, role, epoch, health,
   * catch-up and offer; which paths are fresh. Cheap enough for every tick.
   */
  private inputSignature(): string {
    let s = `${this.role}|${this.epoch}|${this.maintenance}|${this.vipHeld}|${this.witnessEpoch}|${this.localHealthy()}|${this.localEscalated()}|${this.holders?.join(',')}`;
    const link = this.peerLink;
    if (link) {
      const now = this.d.clock.monotonicMs();
      const dead = this.timings.deadAfterMs;
      const st = link.lastState;
      s += `|${link.alive(now, dead)}|${st?.role}|${st?.epoch}|${st?.healthy}|${st?.caughtUp}|${st?.takeoverOffer}|`;
      for (const p of link.paths) s += p.lastOkAt !== null && now - p.lastOkAt < dead ? '1' : '0';
    }
    return s;
  }

  // ---- inputs from the API -------------------------------------------------------------------

  /** Incoming heartbeat from the peer. */
  receiveHeartbeat(msg: HeartbeatMessage): HeartbeatReply {
    const now = this.d.clock.monotonicMs();
    this.peerLink?.heard(msg);
    this.peerStatusToHooks(msg);
    this.notePeerTimings(msg);
    let ack = false;
    if (msg.role === 'primary' && msg.epoch >= this.epoch && this.role !== 'primary') {
      this.promise = { node: msg.node, until: now + this.timings.leaseMs };
      this.lastPrimarySeenAt = now;
      ack = true;
    }
    if (msg.takeoverOffer !== null && msg.takeoverOffer > this.epoch) this.offered(msg.takeoverOffer, msg.takeoverReason);
    return { state: this.heartbeatMessage(), ack };
  }

  /** The peer asks for our vote for `epoch`. */
  receiveVote(candidate: string, epoch: number): { granted: boolean; reason: string; epoch: number; handover?: boolean } {
    const st = this.d.store.get();
    const r = decideVote(
      {
        now: this.d.clock.monotonicMs(),
        node: this.d.config.node,
        role: this.role,
        epoch: st.epoch,
        votedFor: st.votedFor,
        promise: this.promise,
        handoverTo: this.handover?.ready ? this.handover.to : null,
        handoverPending: this.handingDataOver(),
      },
      candidate,
      epoch,
    );
    if (r.granted) this.d.store.update({ votedFor: { epoch, node: candidate } });
    this.d.bus.emit({ type: r.granted ? 'vote_granted' : 'vote_refused', severity: 'info', message: `vote for ${candidate} at epoch ${epoch}: ${r.reason}` });
    return { ...r, epoch: st.epoch };
  }

  /** The peer hands the primary role to us. */
  receiveTakeover(from: string, epoch: number, reason: string = 'switchover'): { accepted: boolean; reason: string } {
    if (epoch <= this.epoch) return { accepted: false, reason: `epoch ${epoch} is not above ours (${this.epoch})` };
    this.offered(epoch, reason);
    this.d.bus.emit({ type: 'takeover_offered', severity: 'info', message: `${from} offers the primary role at epoch ${epoch}` });
    this.kick();
    return { accepted: true, reason: 'campaigning now' };
  }

  private offered(epoch: number, reason: string | undefined): void {
    this.takeoverOffer = epoch;
    this.takeoverReason = reason === 'failback' ? 'failback' : 'switchover';
  }

  /** Queue an admin request; the next cycle decides it. */
  request(kind: 'switchover' | 'failback' | 'promote', to: string | null = null): RequestRecord {
    const id = randomUUID();
    const req: AdminRequest = kind === 'switchover' ? { id, kind, to } : { id, kind };
    this.requests.push(req);
    const rec: RequestRecord = { id, kind, state: 'pending', message: 'queued for the next decision cycle', createdAt: new Date(this.d.clock.nowMs()).toISOString() };
    this.requestLog.push(rec);
    if (this.requestLog.length > 50) this.requestLog.shift();
    this.kick();
    return rec;
  }

  setMaintenance(on: boolean): RequestRecord {
    const was = this.maintenance;
    if (was !== on) {
      this.d.store.update({ maintenance: on });
      this.d.bus.emit({ type: on ? 'maintenance_on' : 'maintenance_off', severity: 'warning', message: on ? 'maintenance mode on: automatic promotion, handover and restarts paused' : 'maintenance mode off: automation resumed' });
    }
    const rec: RequestRecord = { id: randomUUID(), kind: 'maintenance', state: 'done', message: `maintenance ${on ? 'on' : 'off'}${was === on ? ' (unchanged)' : ''}`, createdAt: new Date(this.d.clock.nowMs()).toISOString() };
    this.requestLog.push(rec);
    this.kick();
    return rec;
  }

  getRequest(id: string): RequestRecord | undefined {
    return this.requestLog.find((r) => r.id === id);
  }

  // ---- view and cycle ------------------------------------------------------------------------

  /**
   * What this node tells its peer. Built at most about twice per heartbeat interval (a standby answers
   * one request per path and interval); a change of role, epoch or offer builds a fresh one at once.
   */
  private heartbeatMessage(): HeartbeatMessage {
    const now = this.d.clock.monotonicMs();
    const key = `${this.role}|${this.epoch}|${this.handover?.epoch}|${this.handover?.ready}|${this.handoverReason}`;
    const c = this.hbCache;
    if (c && c.key === key && now - c.at < this.timings.heartbeatMs / 2) return c.msg;
    const msg = this.buildHeartbeatMessage();
    this.hbCache = { at: now, key, msg };
    return msg;
  }

  private buildHeartbeatMessage(): HeartbeatMessage {
    const hooks = this.d.hooks ?? [];
    const replication: Record<string, unknown> = {};
    for (const h of hooks) if (h.peerStatus) replication[h.name] = h.peerStatus();
    return {
      node: this.d.config.node,
      role: this.reportedRole(),
      epoch: this.epoch,
      healthy: this.d.health.healthy(),
      caughtUp: hooks.every((h) => !h.caughtUp || h.caughtUp()),
      // Offered only once the data is handed over: a peer that promoted earlier would fork the database
      // before the old primary's last WAL (its shutdown checkpoint) reached it, and miss the last images.
      takeoverOffer: this.handover?.ready ? this.handover.epoch : null,
      takeoverReason: this.handoverReason,
      sentAt: this.d.clock.nowMs(),
      replication,
      timings: [this.timings.heartbeatMs, this.timings.deadAfterMs, this.timings.leaseMs],
    };
  }

  /** A handover this node started whose data paths have not finished handing over (nothing offered yet). */
  private handingDataOver(): boolean {
    return this.handover !== null && !this.handover.ready;
  }

  /** Role as shown to the world: maintenance overlays the underlying role except for a primary. */
  reportedRole(): Role {
    return this.role;
  }

  /** Hand each data path the peer's report for it (the repository sync reads the primary's change hint there). */
  private peerStatusToHooks(msg: HeartbeatMessage): void {
    const rep = msg.replication && typeof msg.replication === 'object' ? msg.replication : {};
    for (const h of this.d.hooks ?? []) {
      if (!h.onPeerStatus) continue;
      const v = rep[h.name];
      try {
        h.onPeerStatus(v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined, { heartbeatMs: this.timings.heartbeatMs });
      } catch (err) {
        this.d.log?.warn({ err: errorMessage(err), hook: h.name }, 'onPeerStatus failed');
      }
    }
  }

  /**
   * Both nodes must run the same heartbeat, dead-after and lease (docs/operations.md). Reports the
   * peer's timings once when they differ from ours (and each time they change), and once when they
   * match again. A peer that sends no timings (an older release) is not judged.
   */
  private notePeerTimings(msg: HeartbeatMessage): void {
    const t = msg.timings;
    if (!Array.isArray(t) || t.length !== 3 || !t.every((x) => typeof x === 'number')) return;
    const peer: TimingsTriple = { heartbeatMs: t[0], deadAfterMs: t[1], leaseMs: t[2] };
    const prev = this.peerTimings;
    if (prev && sameTimings(prev, peer)) return;
    this.peerTimings = peer;
    const own: TimingsTriple = { heartbeatMs: this.timings.heartbeatMs, deadAfterMs: this.timings.deadAfterMs, leaseMs: this.timings.leaseMs };
    const details = { peer: msg.node, peerTimings: peer, ownTimings: own };
    if (!sameTimings(peer, own)) {
      this.d.bus.emit({
        type: 'peer_timings_differ',
        severity: 'warning',
        message: `peer ${msg.node} runs heartbeat / dead-after / lease ${formatTimings(peer)} ms, this node ${formatTimings(own)} ms: both nodes must use the same timings (set timings alike on both and restart them; docs/operations.md)`,
        details,
      });
    } else if (prev) {
      // prev differed from peer, which equals own: the mismatch is over.
      this.d.bus.emit({ type: 'peer_timings_match', severity: 'info', message: `peer ${msg.node} now runs the same timings as this node (${formatTimings(own)} ms)`, details });
    }
  }

  private onHeartbeatReply(reply: HeartbeatReply, sentAt: number): void {
    if (this.role === 'primary' && reply.ack && this.peerCfg) {
      const prev = this.leaseAcks[this.peerCfg.node] ?? 0;
      if (sentAt > prev) this.leaseAcks[this.peerCfg.node] = sentAt;
    }
    const st = reply.state;
    this.peerStatusToHooks(st);
    this.notePeerTimings(st);
    if (st.role === 'primary' && st.epoch >= this.epoch && this.role !== 'primary') {
      this.lastPrimarySeenAt = this.d.clock.monotonicMs();
    }
    if (st.takeoverOffer !== null && st.takeoverOffer > this.epoch) this.offered(st.takeoverOffer, st.takeoverReason);
    // A higher-epoch primary must be acted on at once, not at the next tick.
    if (st.role === 'primary' && st.epoch > this.epoch) this.kick();
  }

  /**
   * Renew the witness lease (on the heartbeat tick). A renewal unanswered for requestTimeoutMs (to
   * within half a heartbeat) is given up here and sent again, rather than by a timer of its own: such a
   * timer, shorter than the heartbeat, would wake the primary up once more per interval although the
   * answer came within milliseconds. The transport's own timeout is a backstop only.
   */
  private renewWitness(renewEveryTicks: number): void {
    const c = this.d.coordinator;
    // A primary renews, and so does a node handing its data over: its lease must hold the witness until
    // the role is offered, or the peer could win an election with the witness alone before that.
    if (!c || (this.role !== 'primary' && !this.handingDataOver()) || this.stopped) return;
    const sentAt = this.d.clock.monotonicMs();
    const waiting = this.witnessReq;
    if (waiting) {
      if (sentAt - waiting.sentAt < this.timings.requestTimeoutMs - this.timings.heartbeatMs / 2) return;
      this.witnessReq = null;
      this.witnessLast = { at: sentAt, answer: null, error: `${c.describe()}: timeout of ${this.timings.requestTimeoutMs}ms exceeded` };
      waiting.ctrl.abort();
    }
    const req = { ctrl: new AbortController(), sentAt };
    this.witnessReq = req;
    const epoch = this.epoch;
    const backstopMs = Math.max(this.timings.requestTimeoutMs, this.timings.heartbeatMs * renewEveryTicks) + this.timings.heartbeatMs;
    c.acquire(this.d.config.node, epoch, this.timings.leaseMs, backstopMs, req.ctrl.signal)
      .then((a) => {
        this.witnessLast = { at: this.d.clock.monotonicMs(), answer: a, error: null };
        this.noteCoordinatorAnswer(a);
        if (a.granted && epoch === this.epoch && this.role === 'primary') {
          this.leaseAcks.witness = Math.max(this.leaseAcks.witness ?? 0, sentAt);
          // Keep the record in step with the configuration: kept (sync) clusters always have one; a
          // cluster with no synchronous path any more clears the one an earlier configuration left.
          const kept = this.holderRecordKept();
          if (kept && a.holders === null) void this.publishHolders(this.desiredHolders());
          else if (!kept && a.holders) void this.publishHolders(null);
        } else if (a.epoch > this.epoch) {
          this.witnessEpoch = a.epoch;
          this.kick();
        }
      })
      .catch((err) => {
        if (req.ctrl.signal.aborted) return; // given up above (or the node stopped)
        this.witnessLast = { at: this.d.clock.monotonicMs(), answer: null, error: errorMessage(err) };
        this.noteCoordinatorFailure(err);
      })
      .finally(() => {
        if (this.witnessReq === req) this.witnessReq = null;
      });
  }

  buildView(): View {
    const now = this.d.clock.monotonicMs();
    const cfg = this.d.config;
    const t = this.timings;
    const link = this.peerLink;
    let peer: View['peer'] = null;
    if (link && this.peerCfg) {
      const st = link.lastState;
      const alive = link.alive(now, t.deadAfterMs);
      peer = {
        node: this.peerCfg.node,
        alive,
        paths: link.pathAges(now),
        role: st?.role ?? null,
        epoch: st?.epoch ?? 0,
        healthy: st?.healthy ?? false,
        caughtUp: (st?.caughtUp ?? false) && (this.d.hooks ?? []).every((h) => !h.peerCaughtUp || h.peerCaughtUp()),
        lastSeenAgeMs: link.lastHeardAt === null ? null : now - link.lastHeardAt,
        takeoverOffer: this.takeoverOffer,
        holder: !!this.holders?.includes(this.peerCfg.node),
      };
      if (alive && st?.role === 'primary') this.lastPrimarySeenAt = now;
    }
    const preferred = cfg.preferredPrimary ? cfg.preferredPrimary === cfg.node : !this.peerCfg || cfg.node < this.peerCfg.node;
    const peerReady = !!peer && peer.alive && peer.healthy && peer.role === 'standby' && peer.caughtUp;
    if (!peerReady) this.peerReadySince = null;
    else if (this.peerReadySince === null) this.peerReadySince = now;
    return {
      now,
      node: cfg.node,
      role: this.role,
      epoch: this.epoch,
      maintenance: this.maintenance,
      healthy: this.localHealthy(),
      escalated: this.localEscalated(),
      preferred,
      uptimeMs: now - this.startedAt,
      peer,
      voters: this.voters,
      majority: this.majority,
      leaseAcks: { ...this.leaseAcks },
      promiseUntil: this.promise?.until ?? 0,
      witnessEpoch: this.witnessEpoch,
      votedFor: this.d.store.get().votedFor,
      election: this.election,
      lastCampaignAt: this.lastCampaignAt,
      campaignRetryAt: this.campaignRetryAt,
      handover: this.handover,
      request: this.requests[0] ?? null,
      vipHeld: this.vipHeld,
      noPrimaryForMs: this.role === 'primary' ? 0 : now - this.lastPrimarySeenAt,
      handoverAbortedAgoMs: this.handoverAbortedAt === null ? null : now - this.handoverAbortedAt,
      holderRecord: { kept: this.holderRecordKept(), holders: this.holders ? [...this.holders] : null },
      autoFailback: {
        enabled: cfg.failback.auto,
        holdDownMs: cfg.failback.holdDownMs,
        peerIsPreferred: !!this.peerCfg && cfg.preferredPrimary === this.peerCfg.node,
        peerReadyForMs: this.peerReadySince === null ? 0 : now - this.peerReadySince,
      },
      timings: { heartbeatMs: t.heartbeatMs, deadAfterMs: t.deadAfterMs, leaseMs: t.leaseMs, handoverTimeoutMs: t.handoverTimeoutMs },
    };
  }

  private async cycle(): Promise<void> {
    const t0 = this.d.clock.monotonicMs();
    this.cycleSignature = this.inputSignature();
    const view = this.buildView();
    this.lastDecidedAt = view.now;
    this.observe(view);
    const decision = decide(view);
    this.lastDecision = decision;
    // Log what was decided when it changes; the pauses between election attempts are not news.
    if (decision.reason !== this.lastReasonLogged && !decision.reason.startsWith('no action') && !decision.reason.includes('next election attempt')) {
      this.d.log?.info({ role: this.role, epoch: this.epoch, ...(this.witnessFailingSince !== null ? { witness: this.d.coordinator?.describe(), witnessSilentMs: Math.round(view.now - this.witnessFailingSince) } : {}) }, decision.reason);
      this.lastReasonLogged = decision.reason;
    }
    for (const action of decision.actions) {
      if (this.stopped) break;
      await this.execute(action, view);
    }
    if (this.role === 'standby' && !this.stopped) await this.followIfKnown();
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
    if (this.stopped) return;
    const t = this.timings;
    const now = this.d.clock.monotonicMs();
    let next = Number.POSITIVE_INFINITY;
    const consider = (at: number) => {
      if (at > this.lastDecidedAt && at < next) next = at;
    };
    if (this.role === 'primary') {
      const left = leaseRemainingMs({ now, leaseAcks: this.leaseAcks, timings: t, majority: this.majority });
      if (Number.isFinite(left)) consider(now + left + 1);
    } else {
      if (this.promise) consider(this.promise.until + 1);
      if (this.campaignRetryAt !== null) consider(this.campaignRetryAt);
      // The freshest path going silent is the peer's death.
      let freshest: number | null = null;
      for (const p of this.peerLink?.paths ?? []) if (p.lastOkAt !== null && (freshest === null || p.lastOkAt > freshest)) freshest = p.lastOkAt;
      if (freshest !== null) consider(freshest + t.deadAfterMs + 1);
    }
    // Ticks call this every interval, so only a deadline before the next tick needs a timer.
    if (!Number.isFinite(next) || next - now >= t.heartbeatMs) return;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = null;
        this.kick();
      },
      Math.max(0, Math.ceil(next - now)),
    );
  }

  /** Events that are observations, not decisions: path health and peer liveness transitions. */
  private observe(v: View): void {
    const p = v.peer;
    if (!p) return;
    p.paths.forEach((path, i) => {
      const silent = path.ageMs === null ? v.uptimeMs > this.timings.deadAfterMs : path.ageMs >= this.timings.deadAfterMs;
      const others = p.paths.some((q, j) => j !== i && q.ageMs !== null && q.ageMs < this.timings.deadAfterMs);
      if (silent && others && !this.pathDegraded[i]) {
        this.pathDegraded[i] = true;
        this.d.bus.emit({ type: 'path_degraded', severity: 'warning', message: `heartbeat path ${path.url} to ${p.node} silent; other paths still answer`, details: { url: path.url } });
      } else if (!silent && this.pathDegraded[i]) {
        this.pathDegraded[i] = false;
        this.d.bus.emit({ type: 'path_restored', severity: 'info', message: `heartbeat path ${path.url} to ${p.node} answers again`, details: { url: path.url } });
      }
    });
    if (this.peerWasAlive !== p.alive) {
      // The first observation at start-up is not news; only transitions after it are.
      if (this.peerWasAlive !== null) {
        this.d.bus.emit({
          type: p.alive ? 'peer_alive' : 'peer_dead',
          severity: p.alive ? 'info' : 'critical',
          message: p.alive ? `peer ${p.node} answers heartbeats` : `peer ${p.node} silent on all ${p.paths.length} path(s) for ${this.timings.deadAfterMs} ms`,
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

  private vipCtx(reason: string) {
    return { node: this.d.config.node, epoch: this.epoch, role: this.role, reason };
  }

  private hookCtx(): HookContext {
    return {
      node: this.d.config.node,
      epoch: this.epoch,
      peer: this.peerCfg ? { node: this.peerCfg.node, urls: this.peerCfg.urls } : null,
      transport: this.d.transport,
      holders: { claim: this.claimHolders },
      peerIsHolder: !!this.peerCfg && !!this.holders?.includes(this.peerCfg.node),
    };
  }

  /** Run one phase on every data path (in reverse to undo); a failure is an event, and aborts only beforeHandover. */
  private async runHooks(name: string, fn: (h: RoleHooks) => Promise<void> | undefined, order: 'forward' | 'reverse' = 'forward'): Promise<void> {
    const hooks = this.d.hooks ?? [];
    for (const h of order === 'reverse' ? [...hooks].reverse() : hooks) {
      try {
        await fn(h);
      } catch (err) {
        this.d.bus.emit({ type: 'hook_failed', severity: 'critical', message: `${h.name} ${name} failed: ${errorMessage(err)}`, details: { hook: h.name, phase: name } });
        if (name === 'beforeHandover') throw err;
      }
    }
  }

  private async execute(a: Action, view: View): Promise<void> {
    const now = () => this.d.clock.monotonicMs();
    switch (a.kind) {
      case 'setRole':
        this.setRole(a.role);
        return;
      case 'adoptEpoch':
        if (a.epoch > this.epoch) this.d.store.update({ epoch: a.epoch });
        return;
      case 'acquireVip': {
        if (!this.d.vip) {
          this.vipHeld = true;
          return;
        }
        try {
          await this.d.vip.acquire(this.vipCtx('primary'));
          this.vipHeld = true;
        } catch (err) {
          this.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not take ${this.d.vip.describe()}: ${errorMessage(err)}` });
        }
        return;
      }
      case 'releaseVip':
        if (this.d.vip) {
          try {
            await this.d.vip.release(this.vipCtx('not primary'));
          } catch (err) {
            this.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not release ${this.d.vip.describe()}: ${errorMessage(err)}` });
            return;
          }
        }
        this.vipHeld = false;
        return;
      case 'campaign':
        await this.campaign(a.epoch, view, a.force === true);
        return;
      case 'promote':
        await this.promote(a.epoch, view);
        return;
      case 'demote': {
        this.leaseAcks = {};
        this.witnessEpoch = null;
        this.setRole(a.to);
        this.lastPrimarySeenAt = now();
        await this.runHooks('onDemote', (h) => h.onDemote?.({ ...this.hookCtx(), to: a.to, rejoin: a.rejoin }));
        return;
      }
      case 'handover':
        await this.startHandover(a.to, a.epoch, a.requestId, a.reason);
        return;
      case 'abandonHandover':
        if (this.handover) this.handover = null;
        return;
      case 'completeRequest': {
        this.requests = this.requests.filter((r) => r.id !== a.id);
        const rec = this.getRequest(a.id);
        if (rec) {
          rec.state = a.ok ? 'done' : 'refused';
          rec.message = a.message;
        }
        this.d.bus.emit({ type: a.ok ? 'request_done' : 'request_refused', severity: a.ok ? 'info' : 'warning', message: a.message, details: { id: a.id } });
        return;
      }
      case 'emit':
        this.d.bus.emit({ type: a.type, severity: a.severity, message: a.message, details: a.details });
        return;
      default: {
        const never: never = a;
        throw new Error(`unknown action ${JSON.stringify(never)}`);
      }
    }
  }

  private setRole(role: Role): void {
    if (role === this.role) return;
    const from = this.role;
    this.role = role;
    this.d.health.setRole?.(role);
    this.d.bus.emit({ type: 'role_changed', severity: 'info', message: `role ${from} -> ${role}`, details: { from, to: role } });
    if (role === 'standby') void this.followIfKnown();
  }

  private async followIfKnown(): Promise<void> {
    const st = this.peerLink?.lastState;
    if (!st || st.role !== 'primary' || !this.peerCfg) return;
    // Called every cycle while standby: hooks dedupe and pace their own retries (a failed clone...).
    await this.runHooks('onFollow', (h) => h.onFollow?.({ ...this.hookCtx(), primary: st.node }));
  }

  private async campaign(epoch: number, view: View, force = false): Promise<void> {
    const cfg = this.d.config;
    const st = this.d.store.get();
    if (st.votedFor && st.votedFor.epoch >= epoch && st.votedFor.node !== cfg.node) {
      this.election = { epoch, granted: [], refused: ['self'], forced: force, witnessRefusal: null };
      this.lastCampaignAt = this.d.clock.monotonicMs();
      return;
    }
    const startedAt = this.d.clock.monotonicMs();
    this.lastCampaignAt = startedAt;
    this.campaignRetryAt = null;
    if (!this.timing || this.timing.epochBefore !== this.epoch) {
      const p = view.peer;
      const kind: TakeoverTiming['kind'] = this.takeoverOffer !== null ? this.takeoverReason : !p ? 'bootstrap' : p.alive ? (this.epoch === 0 ? 'bootstrap' : 'recovery') : 'failover';
      const data = Object.fromEntries((this.d.hooks ?? []).filter((h) => h.status).map((h) => [h.name, h.status!()]));
      this.timing = { kind, detectMs: p && !p.alive ? this.lastDetectMs : null, campaignStartedAt: startedAt, epochBefore: this.epoch, data };
    }
    this.d.store.update({ votedFor: { epoch, node: cfg.node } });
    const granted: string[] = [];
    const refused: string[] = [];
    const asks: Promise<void>[] = [];
    const timeout = this.timings.requestTimeoutMs;
    let witnessRefusal: string | null = null;
    let handoverGrant = false;
    if (this.d.coordinator) {
      const kept = this.holderRecordKept();
      asks.push(
        this.d.coordinator
          .acquire(cfg.node, epoch, this.timings.leaseMs, timeout, undefined, { holderRecord: kept, force })
          .then((a) => {
            this.noteCoordinatorAnswer(a);
            if (a.granted) {
              granted.push('witness');
              this.leaseAcks.witness = startedAt;
            } else {
              refused.push('witness');
              witnessRefusal = a.reason ?? (a.holder ? 'lease-held' : 'stale-epoch');
              if (a.reason === 'not-a-holder') {
                const key = JSON.stringify(a.holders ?? null);
                if (this.notHolderReported !== key) {
                  this.notHolderReported = key;
                  this.d.bus.emit({
                    type: 'promotion_blocked',
                    severity: 'critical',
                    message: `not promoting: the data-holder record names ${(a.holders ?? []).join(', ')}, not ${cfg.node}; this node may lack acknowledged writes. It waits for a holder to return; \`nimbus-ha promote --accept-data-loss\` overrides (the writes it lacks are lost)`,
                    details: { holders: a.holders ?? null },
                  });
                }
              }
              if (a.epoch >= epoch) this.witnessEpoch = a.epoch;
              // Refused for another node's live lease: retry the moment it runs out (the witness counts
              // from its answer, so from the arrival of the answer is never early) instead of waiting
              // for the next heartbeat-paced attempt. The floor keeps a stale answer from spinning.
              if (a.holder !== null && a.holder !== cfg.node && a.remainingMs > 0) {
                this.campaignRetryAt = this.d.clock.monotonicMs() + Math.max(a.remainingMs + 1, MIN_CAMPAIGN_RETRY_MS);
              } else if (a.epoch >= epoch) {
                // No live lease in the way, only an epoch the witness has already passed (this node
                // missed a grant): the next attempt asks above a.epoch, so it need not wait a heartbeat.
                this.campaignRetryAt = this.d.clock.monotonicMs() + MIN_CAMPAIGN_RETRY_MS;
              }
            }
          })
          .catch((err) => {
            refused.push('witness');
            witnessRefusal = `unreachable: ${errorMessage(err)}`;
            this.noteCoordinatorFailure(err);
          }),
      );
    }
    if (this.peerCfg && view.peer?.alive) {
      const peer = this.peerCfg;
      asks.push(
        Promise.any(peer.urls.map((u) => this.d.transport.post<{ granted: boolean; handover?: boolean }>(u, '/peer/vote', { node: cfg.node, epoch }, timeout)))
          .then((r) => {
            if (r.granted) {
              granted.push(peer.node);
              this.leaseAcks[peer.node] = startedAt;
              if (r.handover === true) handoverGrant = true;
            } else refused.push(peer.node);
          })
          .catch(() => {
            refused.push(peer.node);
          }),
      );
    }
    await Promise.all(asks);
    this.election = { epoch, granted, refused, handoverGrant, forced: force, witnessRefusal };
    if (granted.length + 1 >= this.majority) this.kick();
  }

  private async promote(epoch: number, view: View): Promise<void> {
    const t0 = this.d.clock.monotonicMs();
    const before = this.epoch;
    const forced = this.election?.forced === true;
    // A new primary starts as the only holder (the coordinator's grant said so); its synchronous paths
    // add the standby back once it holds everything.
    this.holderClaims.clear();
    this.notHolderReported = null;
    if (forced) {
      this.d.bus.emit({
        type: 'forced_promotion',
        severity: 'critical',
        epoch,
        message: `promoted at epoch ${epoch} on an operator's request that accepted data loss: writes acknowledged by ${(view.holderRecord.holders ?? []).join(', ') || 'the last holder'} and not received here are lost`,
        details: { holdersBefore: view.holderRecord.holders, epochBefore: before },
      });
    }
    this.d.store.update({ epoch, votedFor: { epoch, node: this.d.config.node } });
    this.election = null;
    this.takeoverOffer = null;
    this.witnessEpoch = null;
    this.promise = null;
    this.setRole('primary');
    const takeover = this.timing?.kind;
    await this.runHooks('onPromote', (h) => h.onPromote?.({ ...this.hookCtx(), takeover }));
    const t1 = this.d.clock.monotonicMs();
    let vipOk = true;
    if (this.d.vip) {
      try {
        // The reason tells the VIP whether a predecessor held the address (failover, switchover...).
        await this.d.vip.acquire(this.vipCtx(this.timing?.kind ?? 'promoted'));
      } catch (err) {
        vipOk = false;
        this.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not take ${this.d.vip.describe()}: ${errorMessage(err)}` });
      }
    }
    this.vipHeld = vipOk;
    const t2 = this.d.clock.monotonicMs();
    const timing = this.timing;
    this.timing = null;
    const kind = timing?.kind ?? 'failover';
    if (kind === 'failover') this.stats.failovers++;
    const details = {
      kind,
      epoch_before: timing?.epochBefore ?? before,
      epoch_after: epoch,
      detect_ms: timing?.detectMs ?? null,
      election_ms: timing ? Math.round(t0 - timing.campaignStartedAt) : null,
      promote_ms: Math.round(t1 - t0),
      vip_ms: Math.round(t2 - t1),
      since_peer_dead_ms: kind === 'failover' && this.peerDeadSince !== null ? Math.round(t2 - this.peerDeadSince) : null,
      // What this node had not yet received from the old primary when it took over (data figures).
      data_at_takeover: timing?.data ?? null,
      peer: view.peer?.node ?? null,
    };
    this.d.bus.emit({
      type: kind === 'failover' || kind === 'switchover' || kind === 'failback' ? kind : 'promoted',
      severity: kind === 'failover' ? 'critical' : 'info',
      epoch,
      message: `promoted to primary at epoch ${epoch} (${kind})`,
      details,
    });
  }

  private async startHandover(to: string, epoch: number, requestId: string | null, reason: 'switchover' | 'failback' | 'escalation'): Promise<void> {
    const rec = requestId ? this.getRequest(requestId) : undefined;
    if (requestId) this.requests = this.requests.filter((r) => r.id !== requestId);
    if (rec) {
      rec.state = 'running';
      rec.message = `handing over to ${to}`;
    }
    const t0 = this.d.clock.monotonicMs();
    this.d.bus.emit({ type: 'handover_started', severity: 'warning', message: `handing the primary role to ${to} at epoch ${epoch}`, details: { to, epoch } });
    // Stop being primary first (no second writer), then give the lease up so the peer need not wait.
    this.handover = { to, epoch, startedAt: t0, ready: false };
    this.handoverReason = reason;
    this.setRole('standby');
    if (this.d.vip) await this.d.vip.release(this.vipCtx('handover')).catch(() => undefined);
    this.vipHeld = false;
    try {
      await this.runHooks('beforeHandover', (h) => h.beforeHandover?.(this.hookCtx()));
    } catch (err) {
      // Data could not be handed over safely: stay primary, and undo what the data paths that went
      // first did (the database stopped for the handover must accept writes again).
      await this.runHooks('onHandoverAborted', (h) => h.onHandoverAborted?.(this.hookCtx()), 'reverse');
      this.handover = null;
      this.handoverAbortedAt = this.d.clock.monotonicMs();
      this.setRole('primary');
      if (rec) {
        rec.state = 'refused';
        rec.message = `handover aborted: ${errorMessage(err)}`;
      }
      this.d.bus.emit({ type: 'handover_aborted', severity: 'critical', message: `handover to ${to} aborted: ${errorMessage(err)}` });
      this.kick();
      return;
    }
    // Every data path handed its data over: the successor holds every acknowledged write, so the record
    // may name it (the coordinator then grants it the epoch). Best effort: the handover vote proves it too.
    if (this.holderRecordKept()) {
      for (const h of this.d.hooks ?? []) if (h.syncMode?.()) this.holderClaims.set(h.name, true);
      await this.publishHolders(this.desiredHolders());
    }
    // The handover timeout runs from the offer: the hooks bound their own waits (catch-up, last images).
    if (this.handover?.epoch === epoch) this.handover = { ...this.handover, ready: true, startedAt: this.d.clock.monotonicMs() };
    await this.runHooks('onDemote', (h) => h.onDemote?.({ ...this.hookCtx(), to: 'standby', rejoin: false }));
    const ownEpoch = this.epoch;
    this.leaseAcks = {};
    if (this.d.coordinator) await this.d.coordinator.release(this.d.config.node, ownEpoch, this.timings.requestTimeoutMs).catch(() => undefined);
    const peer = this.peerCfg;
    if (peer) {
      await Promise.any(peer.urls.map((u) => this.d.transport.post(u, '/peer/takeover', { node: this.d.config.node, epoch, reason }, this.timings.requestTimeoutMs))).catch((err) => {
        this.d.bus.emit({ type: 'handover_failed', severity: 'critical', message: `could not reach ${to} to hand over: ${errorMessage(err)}` });
      });
    }
    if (rec) {
      rec.state = 'done';
      rec.message = `handed over to ${to} (epoch ${epoch}) in ${Math.round(this.d.clock.monotonicMs() - t0)} ms; ${to} promotes itself`;
    }
  }

  // ---- status --------------------------------------------------------------------------------

  status(): Record<string, unknown> {
    const now = this.d.clock.monotonicMs();
    const v = this.lastDecision;
    const link = this.peerLink;
    const leaseView = { now, leaseAcks: this.leaseAcks, timings: this.timings, majority: this.majority };
    return {
      node: this.d.config.node,
      role: this.role,
      epoch: this.epoch,
      maintenance: this.maintenance,
      healthy: this.d.health.healthy(),
      reason: v?.reason ?? 'starting',
      lease:
        this.role === 'primary'
          ? { votes: validLeaseVotes(leaseView), voters: this.voters, majority: this.majority, remaining_ms: finiteOrNull(leaseRemainingMs(leaseView)) }
          : { votes: 0, voters: this.voters, majority: this.majority, remaining_ms: 0 },
      vip: this.d.vip ? { address: this.d.vip.describe(), held: this.vipHeld } : null,
      peers: link
        ? [
            {
              node: link.node,
              alive: link.alive(now, this.timings.deadAfterMs),
              role: link.lastState?.role ?? null,
              epoch: link.lastState?.epoch ?? null,
              healthy: link.lastState?.healthy ?? null,
              caught_up: link.lastState?.caughtUp ?? null,
              last_seen_ms: link.lastHeardAt === null ? null : Math.round(now - link.lastHeardAt),
              paths: link.paths.map((p) => ({
                url: p.url,
                age_ms: p.lastOkAt === null ? null : Math.round(now - p.lastOkAt),
                degraded: p.lastOkAt === null || now - p.lastOkAt >= this.timings.deadAfterMs,
                sent: p.sent,
                failed: p.failed,
                answered_only: p.skipped,
                inbound_age_ms: p.lastInboundAt === null ? null : Math.round(now - p.lastInboundAt),
                last_error: p.lastError,
              })),
              replication: link.lastState?.replication ?? null,
              timings: this.peerTimings,
            },
          ]
        : [],
      witness: this.d.coordinator
        ? {
            url: this.d.coordinator.describe(),
            last_answer: this.witnessLast?.answer ?? null,
            last_error: this.witnessLast?.error ?? null,
            age_ms: this.witnessLast ? Math.round(now - this.witnessLast.at) : null,
          }
        : null,
      data_holders: { kept: this.holderRecordKept(), holders: this.holders, not_a_holder: notAHolder({ node: this.d.config.node, holderRecord: { kept: this.holderRecordKept(), holders: this.holders } }) },
      witness_unreachable: this.witnessUnreachableReported,
      services: this.d.health.status(),
      replication: Object.fromEntries((this.d.hooks ?? []).filter((h) => h.status).map((h) => [h.name, h.status!()])),
      requests: this.requestLog.slice(-10),
      timings: this.timings,
      uptime_ms: Math.round(now - this.startedAt),
    };
  }

  /** Per-path heartbeat ages for metrics. */
  pathAgesMs(): { peer: string; url: string; ageMs: number | null }[] {
    const now = this.d.clock.monotonicMs();
    const link = this.peerLink;
    if (!link) return [];
    return link.pathAges(now).map((p) => ({ peer: link.node, ...p }));
  }

  /** Replication lag (ms) reported by data-path hooks, the largest one, for /standby?max_lag_ms. */
  lagMs(): number | null {
    let worst: number | null = null;
    for (const h of this.d.hooks ?? []) {
      const s = h.status?.();
      const lag = s && typeof s.lag_ms === 'number' ? s.lag_ms : null;
      if (lag !== null) worst = Math.max(worst ?? 0, lag);
    }
    return worst;
  }

  caughtUp(): boolean {
    return (this.d.hooks ?? []).every((h) => !h.caughtUp || h.caughtUp());
  }
}

function finiteOrNull(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n) : null;
}
