import type { Clock, Coordinator, HealthSource, PeerTransport, Role, RoleHooks, Vip } from '../../ports.js';
import type { EventBus } from '../../events/bus.js';
import type { ClusterConfig } from '../../config/schema.js';
import type { AdminRequest, Decision, View } from '../decide.js';
import type { EpochStore } from '../epoch-store.js';
import type { PeerLink } from '../heartbeat.js';
import type { HolderRecord } from './holder-record.js';
import type { WitnessLink } from './witness-link.js';
import type { AdminInbox } from './admin-inbox.js';
import type { Observer } from './observe.js';

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

export type PeerConfig = ClusterConfig['peers'][number];

/** One record per failover / switchover / fail-back with timings, filled in as it happens. */
export interface TakeoverTiming {
  kind: 'failover' | 'switchover' | 'failback' | 'bootstrap' | 'recovery';
  detectMs: number | null;
  campaignStartedAt: number;
  epochBefore: number;
  /** Data-path status (lag, objects and files behind) when the takeover began. */
  data: Record<string, unknown>;
}

/**
 * The agent's mutable state between cycles. Only the agent's own modules change it, and only from a
 * decision cycle or an authenticated peer message.
 */
export class AgentState {
  role: Role = 'starting';
  /** Per voter: when (monotonic) the request its last lease vote answered was sent. */
  leaseAcks: Record<string, number> = {};
  /** A higher epoch the coordinator reported than this node's (it must step down or campaign above it). */
  witnessEpoch: number | null = null;
  /** This standby promised the primary not to campaign until `until` (monotonic). */
  promise: { node: string; until: number } | null = null;
  election: View['election'] = null;
  lastCampaignAt: number | null = null;
  /** See View.campaignRetryAt: set from the witness's answer to a refused campaign. */
  campaignRetryAt: number | null = null;
  handover: View['handover'] = null;
  /** A planned move waiting out timings.handoverDrainMs on this primary (View.drain). */
  drain: View['drain'] = null;
  takeoverOffer: number | null = null;
  takeoverReason: 'switchover' | 'failback' = 'switchover';
  handoverReason: 'switchover' | 'failback' | 'escalation' = 'switchover';
  /** When a handover this node started was last aborted by a data path (monotonic ms), or null. */
  handoverAbortedAt: number | null = null;
  /** When this node became primary by a switchover or fail-back (monotonic ms): the hold-down runs from there. */
  plannedMoveAt: number | null = null;
  /** Since when (monotonic) the peer has been a healthy, caught-up standby (automatic fail-back). */
  peerReadySince: number | null = null;
  vipHeld = false;
  lastDecision: Decision | null = null;
  lastPrimarySeenAt: number;
  timing: TakeoverTiming | null = null;
  stopped = false;

  constructor(startedAt: number) {
    this.lastPrimarySeenAt = startedAt;
  }

  /** The peer offers the primary role at `epoch` (switchover or fail-back). */
  offered(epoch: number, reason: string | undefined): void {
    this.takeoverOffer = epoch;
    this.takeoverReason = reason === 'failback' ? 'failback' : 'switchover';
  }

  /** A handover this node started whose data paths have not finished handing over (nothing offered yet). */
  handingDataOver(): boolean {
    return this.handover !== null && !this.handover.ready;
  }
}

/**
 * Counters for metrics. tickLagMaxMs: the largest delay of the heartbeat timer behind its schedule since
 * the metrics last read it — event-loop lag as the heartbeats feel it, measured on a wake-up the node
 * has anyway.
 */
export interface AgentStats {
  cycles: number;
  lastCycleMs: number;
  failovers: number;
  maxCycleMs: number;
  tickLagMaxMs: number;
}

/** What the agent's modules share: its dependencies, its state and its parts. */
export interface AgentCore {
  readonly d: AgentDeps;
  readonly s: AgentState;
  readonly startedAt: number;
  readonly peerLink: PeerLink | null;
  readonly peerCfg: PeerConfig | null;
  readonly holders: HolderRecord;
  readonly witness: WitnessLink;
  readonly inbox: AdminInbox;
  readonly observer: Observer;
  readonly epoch: number;
  readonly maintenance: boolean;
  readonly maintenanceScope: 'cluster' | 'node' | 'cluster+node' | null;
  readonly voters: number;
  readonly majority: number;
  readonly timings: ClusterConfig['timings'];
  readonly stats: AgentStats;
  /** Run a decision cycle now (coalesces with one already running). */
  kick(): void;
  localHealthy(): boolean;
  localEscalated(): boolean;
}

export function hooksOf(c: AgentCore): RoleHooks[] {
  return c.d.hooks ?? [];
}

/** What a VIP adapter is told with each move. */
export function vipCtx(c: AgentCore, reason: string) {
  return { node: c.d.config.node, epoch: c.epoch, role: c.s.role, reason };
}
