import type { HookContext, Role, RoleHooks } from '../../ports.js';
import { errorMessage } from '../../errors.js';
import type { Action, View } from '../decide.js';
import { campaign } from './election.js';
import { hooksOf, vipCtx, type AgentCore } from './state.js';

/**
 * Carries decide()'s actions out through the ports: role and epoch changes, VIP moves, elections, the
 * promotion and handover choreography across the data paths, and the answers to admin requests.
 */
export class Executor {
  constructor(private readonly c: AgentCore) {}

  async execute(a: Action, view: View): Promise<void> {
    const c = this.c;
    const s = c.s;
    switch (a.kind) {
      case 'setRole':
        this.setRole(a.role);
        return;
      case 'adoptEpoch':
        if (a.epoch > c.epoch) c.d.store.update({ epoch: a.epoch });
        return;
      case 'acquireVip': {
        if (!c.d.vip) {
          s.vipHeld = true;
          return;
        }
        try {
          await c.d.vip.acquire(vipCtx(c, 'primary'));
          s.vipHeld = true;
        } catch (err) {
          c.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not take ${c.d.vip.describe()}: ${errorMessage(err)}` });
        }
        return;
      }
      case 'releaseVip':
        if (c.d.vip) {
          try {
            await c.d.vip.release(vipCtx(c, 'not primary'));
          } catch (err) {
            c.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not release ${c.d.vip.describe()}: ${errorMessage(err)}` });
            return;
          }
        }
        s.vipHeld = false;
        return;
      case 'campaign':
        await campaign(c, a.epoch, view, a.force === true);
        return;
      case 'promote':
        await this.promote(a.epoch, view);
        return;
      case 'demote': {
        s.leaseAcks = {};
        s.witnessEpoch = null;
        this.setRole(a.to);
        s.lastPrimarySeenAt = c.d.clock.monotonicMs();
        await this.runHooks('onDemote', (h) => h.onDemote?.({ ...this.hookCtx(), to: a.to, rejoin: a.rejoin }));
        return;
      }
      case 'handover':
        await this.startHandover(a.to, a.epoch, a.requestId, a.reason);
        return;
      case 'abandonHandover':
        if (s.handover) s.handover = null;
        return;
      case 'drain': {
        s.drain = a.drain;
        const rec = a.drain.requestId ? c.inbox.take(a.drain.requestId) : undefined;
        if (rec) {
          rec.state = 'running';
          rec.message = `draining load balancers for ${c.timings.handoverDrainMs} ms, then handing over to ${a.drain.to}`;
        }
        c.d.bus.emit({
          type: 'handover_draining',
          severity: 'info',
          message: `${a.drain.reason} to ${a.drain.to}: /primary answers 503 for ${c.timings.handoverDrainMs} ms while this node still serves, then the handover starts`,
          details: { to: a.drain.to, epoch: a.drain.epoch, reason: a.drain.reason, drain_ms: c.timings.handoverDrainMs },
        });
        // Wake up when the drain is over (cycles also run on every heartbeat tick).
        c.d.clock.timeout(Math.max(0, a.drain.untilMs - c.d.clock.monotonicMs()), () => c.kick());
        return;
      }
      case 'endDrain':
        s.drain = null;
        return;
      case 'completeRequest':
        c.inbox.complete(a.id, a.ok, a.message);
        return;
      case 'emit':
        c.d.bus.emit({ type: a.type, severity: a.severity, message: a.message, details: a.details });
        return;
      default: {
        const never: never = a;
        throw new Error(`unknown action ${JSON.stringify(never)}`);
      }
    }
  }

  setRole(role: Role): void {
    const c = this.c;
    // A drain belongs to a primary: any other role ends it (a fence, a demotion, the handover itself).
    if (role !== 'primary') c.s.drain = null;
    if (role === c.s.role) return;
    const from = c.s.role;
    c.s.role = role;
    c.d.health.setRole?.(role);
    c.d.bus.emit({ type: 'role_changed', severity: 'info', message: `role ${from} -> ${role}`, details: { from, to: role } });
    if (role === 'standby') void this.followIfKnown();
  }

  /** On a standby: let every data path follow the primary it hears from. */
  async followIfKnown(): Promise<void> {
    const c = this.c;
    const st = c.peerLink?.lastState;
    if (!st || st.role !== 'primary' || !c.peerCfg) return;
    // Called every cycle while standby: hooks dedupe and pace their own retries (a failed clone...).
    await this.runHooks('onFollow', (h) => h.onFollow?.({ ...this.hookCtx(), primary: st.node }));
  }

  hookCtx(): HookContext {
    const c = this.c;
    return {
      node: c.d.config.node,
      epoch: c.epoch,
      peer: c.peerCfg ? { node: c.peerCfg.node, urls: c.peerCfg.urls, ordered: () => orderedPeerUrls(c) } : null,
      transport: c.d.transport,
      holders: { claim: c.holders.claim },
      peerIsHolder: c.holders.peerIsHolder(),
    };
  }

  /** Run one phase on every data path (in reverse to undo); a failure is an event, and aborts only beforeHandover. */
  private async runHooks(name: string, fn: (h: RoleHooks) => Promise<void> | undefined, order: 'forward' | 'reverse' = 'forward'): Promise<void> {
    const hooks = hooksOf(this.c);
    for (const h of order === 'reverse' ? [...hooks].reverse() : hooks) {
      try {
        await fn(h);
      } catch (err) {
        this.c.d.bus.emit({ type: 'hook_failed', severity: 'critical', message: `${h.name} ${name} failed: ${errorMessage(err)}`, details: { hook: h.name, phase: name } });
        if (name === 'beforeHandover') throw err;
      }
    }
  }

  private async promote(epoch: number, view: View): Promise<void> {
    const c = this.c;
    const s = c.s;
    const clock = c.d.clock;
    const t0 = clock.monotonicMs();
    const before = c.epoch;
    const forced = s.election?.forced === true;
    // A new primary starts as the only holder (the coordinator's grant said so); its synchronous paths
    // add the standby back once it holds everything.
    c.holders.startOver();
    if (forced) {
      c.d.bus.emit({
        type: 'forced_promotion',
        severity: 'critical',
        epoch,
        message: `promoted at epoch ${epoch} on an operator's request that accepted data loss: writes acknowledged by ${(view.holderRecord.holders ?? []).join(', ') || 'the last holder'} and not received here are lost`,
        details: { holdersBefore: view.holderRecord.holders, epochBefore: before },
      });
    }
    c.d.store.update({ epoch, votedFor: { epoch, node: c.d.config.node } });
    s.election = null;
    s.takeoverOffer = null;
    s.witnessEpoch = null;
    s.promise = null;
    this.setRole('primary');
    const takeover = s.timing?.kind;
    s.plannedMoveAt = takeover === 'switchover' || takeover === 'failback' ? clock.monotonicMs() : null;
    await this.runHooks('onPromote', (h) => h.onPromote?.({ ...this.hookCtx(), takeover }));
    const t1 = clock.monotonicMs();
    let vipOk = true;
    if (c.d.vip) {
      try {
        // A predecessor held the address (failover, switchover, fail-back): the VIP skips its duplicate probe.
        const kind = s.timing?.kind;
        await c.d.vip.acquire({ ...vipCtx(c, kind ?? 'promoted'), takeover: kind === 'failover' || kind === 'switchover' || kind === 'failback' });
      } catch (err) {
        vipOk = false;
        c.d.bus.emit({ type: 'vip_failed', severity: 'critical', message: `could not take ${c.d.vip.describe()}: ${errorMessage(err)}` });
      }
    }
    s.vipHeld = vipOk;
    const t2 = clock.monotonicMs();
    const timing = s.timing;
    s.timing = null;
    const kind = timing?.kind ?? 'failover';
    if (kind === 'failover') c.stats.failovers++;
    const deadSince = c.observer.peerDeadSince;
    const details = {
      kind,
      epoch_before: timing?.epochBefore ?? before,
      epoch_after: epoch,
      detect_ms: timing?.detectMs ?? null,
      election_ms: timing ? Math.round(t0 - timing.campaignStartedAt) : null,
      promote_ms: Math.round(t1 - t0),
      vip_ms: Math.round(t2 - t1),
      since_peer_dead_ms: kind === 'failover' && deadSince !== null ? Math.round(t2 - deadSince) : null,
      // What this node had not yet received from the old primary when it took over (data figures).
      data_at_takeover: timing?.data ?? null,
      peer: view.peer?.node ?? null,
    };
    c.d.bus.emit({
      type: kind === 'failover' || kind === 'switchover' || kind === 'failback' ? kind : 'promoted',
      severity: kind === 'failover' ? 'critical' : 'info',
      epoch,
      message: `promoted to primary at epoch ${epoch} (${kind})`,
      details,
    });
  }

  private async startHandover(to: string, epoch: number, requestId: string | null, reason: 'switchover' | 'failback' | 'escalation'): Promise<void> {
    const c = this.c;
    const s = c.s;
    const clock = c.d.clock;
    const rec = requestId ? c.inbox.take(requestId) : undefined;
    if (rec) {
      rec.state = 'running';
      rec.message = `handing over to ${to}`;
    }
    const t0 = clock.monotonicMs();
    c.d.bus.emit({ type: 'handover_started', severity: 'warning', message: `handing the primary role to ${to} at epoch ${epoch}`, details: { to, epoch } });
    // Stop being primary first (no second writer), then give the lease up so the peer need not wait.
    s.handover = { to, epoch, startedAt: t0, ready: false };
    s.handoverReason = reason;
    this.setRole('standby');
    if (c.d.vip) await c.d.vip.release(vipCtx(c, 'handover')).catch(() => undefined);
    s.vipHeld = false;
    try {
      await this.runHooks('beforeHandover', (h) => h.beforeHandover?.(this.hookCtx()));
    } catch (err) {
      // Data could not be handed over safely: stay primary, and undo what the data paths that went
      // first did (the database stopped for the handover must accept writes again).
      await this.runHooks('onHandoverAborted', (h) => h.onHandoverAborted?.(this.hookCtx()), 'reverse');
      s.handover = null;
      s.handoverAbortedAt = clock.monotonicMs();
      this.setRole('primary');
      if (rec) {
        rec.state = 'refused';
        rec.message = `handover aborted: ${errorMessage(err)}`;
      }
      c.d.bus.emit({ type: 'handover_aborted', severity: 'critical', message: `handover to ${to} aborted: ${errorMessage(err)}` });
      c.kick();
      return;
    }
    // Every data path handed its data over: the successor holds every acknowledged write, so the record
    // may name it (the coordinator then grants it the epoch). Best effort: the handover vote proves it too.
    if (c.holders.kept()) {
      c.holders.claimAllSynchronous();
      await c.holders.publish(c.holders.desired());
    }
    // The handover timeout runs from the offer: the hooks bound their own waits (catch-up, last images).
    if (s.handover?.epoch === epoch) s.handover = { ...s.handover, ready: true, startedAt: clock.monotonicMs() };
    await this.runHooks('onDemote', (h) => h.onDemote?.({ ...this.hookCtx(), to: 'standby', rejoin: false }));
    const ownEpoch = c.epoch;
    s.leaseAcks = {};
    if (c.d.coordinator) await c.d.coordinator.release(c.d.config.node, ownEpoch, c.timings.requestTimeoutMs).catch(() => undefined);
    const peer = c.peerCfg;
    if (peer) {
      await Promise.any(peer.urls.map((u) => c.d.transport.post(u, '/peer/takeover', { node: c.d.config.node, epoch, reason }, c.timings.requestTimeoutMs))).catch((err) => {
        c.d.bus.emit({ type: 'handover_failed', severity: 'critical', message: `could not reach ${to} to hand over: ${errorMessage(err)}` });
      });
    }
    if (rec) {
      rec.state = 'done';
      rec.message = `handed over to ${to} (epoch ${epoch}) in ${Math.round(clock.monotonicMs() - t0)} ms; ${to} promotes itself`;
    }
  }
}

/** The peer's API URLs, those on a heartbeat path that answers now first (see PeerRef.ordered). */
export function orderedPeerUrls(c: AgentCore): string[] {
  const urls = c.peerCfg?.urls ?? [];
  const link = c.peerLink;
  if (!link || link.paths.length !== urls.length) return [...urls];
  return link.liveOrder(c.d.clock.monotonicMs(), c.timings.deadAfterMs).map((i) => urls[i]);
}
