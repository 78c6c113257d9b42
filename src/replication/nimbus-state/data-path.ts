/**
 * The Nimbus head node's own state (Derby databases, Cumulus's authz.db and posixdata) as a data path
 * of the agent: the primary snapshots and ships every item each interval; the standby verifies and
 * installs; the standby is caught up only when every item has a verified copy within its bound.
 */
import { isAbsolute, join } from 'node:path';
import type { Router } from 'express';
import type { PeerTransport } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { NimbusStateConfig } from './config.js';
import type { NimbusStateEngine } from './types.js';
import { NimbusStateReceiver, type ResolvedItem } from './receiver.js';
import { NimbusStateSender } from './sender.js';
import { nimbusStatePeerRouter } from './router.js';
import { percentile } from './stats.js';

export interface NimbusStateEvents {
  emit(e: { type: string; severity?: 'info' | 'warning' | 'critical'; message: string; details?: Record<string, unknown> }): void;
}

export function resolveItems(cfg: NimbusStateConfig): ResolvedItem[] {
  const abs = (p: string) => (isAbsolute(p) ? p : join(cfg.home, p));
  return [
    ...cfg.derby.map((d) => ({ kind: 'derby' as const, name: d.name, path: abs(d.path), pidFile: d.pidFile === undefined ? undefined : abs(d.pidFile), maxPauseMs: d.maxPauseMs, boundMs: d.boundMs, tableCheckEveryMs: d.tableCheckEveryMs })),
    ...cfg.sqlite.map((s) => ({ kind: 'sqlite' as const, name: s.name, path: abs(s.path), posixdata: abs(s.posixdata), boundMs: s.boundMs })),
  ];
}

export class NimbusStateDataPath implements RoleHooks {
  readonly name = 'nimbus-state';
  readonly receiver: NimbusStateReceiver;
  readonly sender: NimbusStateSender;
  readonly router: Router;
  private primary = false;
  /** Where the standby's sidecar is reached now (asked before each round: a cut path is left at once). */
  private peerUrl: () => string | null = () => null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<boolean> | null = null;
  private lastOk: boolean | null = null;

  constructor(private readonly o: { config: NimbusStateConfig; stagingDir: string; engine: NimbusStateEngine; transport: PeerTransport; events: NimbusStateEvents; isStandby: () => boolean }) {
    const items = resolveItems(o.config);
    const stagingDir = o.config.stagingDir ?? o.stagingDir;
    this.receiver = new NimbusStateReceiver({ items, stagingDir, engine: o.engine, accepting: o.isStandby });
    this.sender = new NimbusStateSender({ items, stagingDir, engine: o.engine, transport: o.transport, requestTimeoutMs: o.config.requestTimeoutMs });
    this.router = nimbusStatePeerRouter(this.receiver);
  }

  async start(): Promise<void> {
    await this.receiver.recover();
  }

  /** One round now (the loop's step; also the final round before a handover). */
  runRound(): Promise<boolean> {
    if (this.running) return this.running;
    const url = this.peerUrl();
    if (!url) return Promise.resolve(false);
    this.running = this.sender
      .round(url)
      .then((ok) => {
        if (ok !== this.lastOk) {
          const errors = [...this.sender.items].filter(([, s]) => s.lastError).map(([n, s]) => `${n}: ${s.lastError}`);
          this.o.events.emit(
            ok
              ? { type: 'nimbus_state_shipping', severity: 'info', message: 'every Nimbus state item has a verified copy on the standby' }
              : { type: 'nimbus_state_failed', severity: 'warning', message: `Nimbus state not shipped: ${errors.join('; ')}`, details: { errors } },
          );
          this.lastOk = ok;
        }
        return ok;
      })
      .finally(() => (this.running = null));
    return this.running;
  }

  private schedule(): void {
    if (!this.primary) return;
    this.timer = setTimeout(() => {
      void this.runRound().finally(() => this.schedule());
    }, this.o.config.intervalMs);
    this.timer.unref?.();
  }

  async onPromote(ctx: HookContext): Promise<void> {
    this.startShipping(ctx.peer ? () => (ctx.peer!.ordered ? ctx.peer!.ordered() : ctx.peer!.urls)[0] ?? null : null);
  }

  /** Primary role: ship to the standby's sidecar at `peerUrl` (a URL, or asked before each round) every interval. */
  startShipping(peerUrl: string | null | (() => string | null)): void {
    this.primary = true;
    this.peerUrl = typeof peerUrl === 'function' ? peerUrl : () => peerUrl;
    this.sender.resetPeer();
    if (!this.timer) this.schedule();
  }

  async onDemote(): Promise<void> {
    this.primary = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  async beforeHandover(): Promise<void> {
    const ok = await this.runRound();
    if (!ok) throw new Error(`Nimbus state not on the standby: ${[...this.sender.items].map(([n, s]) => `${n}: ${s.lastError ?? 'ok'}`).join('; ')}`);
  }

  /** On the standby: every item has a verified copy installed within its bound. */
  caughtUp(): boolean {
    return this.receiver.caughtUp();
  }

  peerCaughtUp(): boolean {
    return !this.primary || this.sender.peerCaughtUp();
  }

  status(): Record<string, unknown> {
    if (!this.primary) return { role: 'receiver', caughtUp: this.receiver.caughtUp(), ...this.receiver.status() };
    return {
      role: 'sender',
      peerCaughtUp: this.sender.peerCaughtUp(),
      items: Object.fromEntries(
        [...this.sender.items].map(([n, s]) => [
          n,
          {
            lastTakenAt: s.lastTakenAt === null ? null : new Date(s.lastTakenAt).toISOString(),
            lastAck: s.lastAck && { snapshotId: s.lastAck.snapshotId, takenAt: new Date(s.lastAck.takenAt).toISOString(), verifyMs: s.lastAck.verifyMs },
            pauseMsP99: percentile(s.pausesMs, 99),
            abandonedFreezes: s.abandonedFreezes,
            recoveryPointMsP99: percentile(s.recoveryPointsMs, 99),
            backupMsP99: percentile(s.backupMs, 99),
            filesShipped: s.filesShipped,
            bytesShipped: s.bytesShipped,
            fallbacks: s.fallbacks,
            lastUnit: s.lastUnit,
            lastError: s.lastError,
          },
        ]),
      ),
    };
  }

  peerStatus(): Record<string, unknown> {
    return this.primary ? { role: 'sender', ok: this.lastOk } : { role: 'receiver', caughtUp: this.receiver.caughtUp() };
  }

  async close(): Promise<void> {
    await this.onDemote();
    await this.receiver.settle();
    await this.o.engine.close?.();
  }
}
