/**
 * ServiceMonitor: probes each service on its own timer, applies the restart policy, restarts through
 * the ServiceController while this node is active, and escalates (the agent then hands over).
 */
import { type Clock, type ProbeResult, type ServiceController } from '../ports.js';
import { assertNever } from '../util/assert-never.js';
import { gridDelayMs } from '../util/cadence.js';
import { errorMessage } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { PolicyConfig } from './config.js';
import { MonitorHistory, type MonitorHistorySnapshot } from './history.js';
import {
  defaultPolicyConfig,
  evaluateProbe,
  initialPolicyState,
  type PolicyDecision,
  type PolicyMode,
  type PolicyState,
} from './policy.js';
import type { Probe } from './probes.js';

export interface MonitoredService {
  controller: ServiceController;
  /** Probe to run; defaults to `controller.probe`. */
  probe?: Probe;
  /** Policy knobs; missing ones take the defaults (2 failures, 4 restarts in 10 min, 2 successes). */
  policy?: Partial<Omit<PolicyConfig, 'backoff'>> & { backoff?: Partial<PolicyConfig['backoff']> };
  intervalMs: number;
  timeoutMs: number;
}

export interface ServiceMonitorOptions {
  services: MonitoredService[];
  bus: EventBus;
  clock: Clock;
  /** Entries kept per history list (default 500). */
  historySize?: number;
  /** Whether this node starts as the active (primary) node; default false (probe only). */
  active?: boolean;
  /** Called (not awaited) when a service's restarts are exhausted; the agent requests a handover. */
  onEscalate?: (service: string, reason: string) => void | Promise<void>;
}

export interface LastProbe extends ProbeResult {
  /** ISO-8601 wall time of the probe's end. */
  at: string;
}

export interface ServiceStatus {
  name: string;
  healthy: boolean;
  consecutiveFailures: number;
  restartsInWindow: number;
  lastProbe: LastProbe | null;
  escalated: boolean;
  /** The policy's reason for its last decision. */
  lastReason: string | null;
}

interface Entry {
  spec: MonitoredService;
  name: string;
  probe: Probe;
  config: PolicyConfig;
  state: PolicyState;
  lastProbe: LastProbe | null;
  lastReason: string | null;
  /** Serialises checks of one service (timer loop and checkNow). */
  chain: Promise<void>;
}

/** Extra time a probe gets beyond its own timeout before the monitor stops waiting for it. */
const PROBE_GRACE_MS = 1_000;

export class ServiceMonitor {
  private readonly entries: Entry[];
  private readonly hist: MonitorHistory;
  private active: boolean;
  private paused = false;
  private abort: AbortController | null = null;
  private loops: Promise<void>[] = [];

  constructor(private readonly opts: ServiceMonitorOptions) {
    const names = new Set<string>();
    this.entries = opts.services.map((spec) => {
      const name = spec.controller.name;
      if (names.has(name)) throw new Error(`duplicate monitored service "${name}"`);
      names.add(name);
      return {
        spec,
        name,
        probe: spec.probe ?? ((t: number) => spec.controller.probe(t)),
        config: {
          ...defaultPolicyConfig,
          ...spec.policy,
          backoff: { ...defaultPolicyConfig.backoff, ...spec.policy?.backoff },
        },
        state: initialPolicyState(),
        lastProbe: null,
        lastReason: null,
        chain: Promise.resolve(),
      };
    });
    this.hist = new MonitorHistory(opts.historySize ?? 500);
    this.active = opts.active ?? false;
  }

  /** Starts one timer loop per service (probe, then wait for the next grid point of intervalMs). Idempotent. */
  start(): void {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    this.loops = this.entries.map((e) => this.loop(e, abort.signal));
  }

  /** Stops the loops and waits for in-flight checks (including a restart in progress) to end. */
  async stop(): Promise<void> {
    const abort = this.abort;
    if (!abort) return;
    this.abort = null;
    abort.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** Probe now, outside the timers (all services, or one). Resolves when the checks are done. */
  async checkNow(name?: string): Promise<void> {
    const targets = name === undefined ? this.entries : this.entries.filter((e) => e.name === name);
    if (name !== undefined && targets.length === 0) throw new Error(`unknown service "${name}"`);
    await Promise.all(targets.map((e) => this.enqueue(e)));
  }

  /** Primary: restarts and escalation allowed. Standby: probe only. */
  setActive(active: boolean): void {
    this.active = active;
  }

  /** Maintenance mode: keep probing and reporting, take no action. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get isActive(): boolean {
    return this.active;
  }

  /** Forget the policy state of a service (or all): counters, restart window, escalation. */
  reset(name?: string): void {
    for (const e of this.entries) if (name === undefined || e.name === name) e.state = initialPolicyState();
  }

  status(): ServiceStatus[] {
    const now = this.opts.clock.monotonicMs();
    return this.entries.map((e) => ({
      name: e.name,
      healthy: e.state.healthy,
      consecutiveFailures: e.state.consecutiveFailures,
      restartsInWindow: e.state.restartTimesMs.filter((t) => now - t < e.config.windowMs).length,
      lastProbe: e.lastProbe ? { ...e.lastProbe } : null,
      escalated: e.state.escalated,
      lastReason: e.lastReason,
    }));
  }

  /** Whether every monitored service counts as healthy (after hysteresis); true when none is monitored. */
  allHealthy(): boolean {
    return this.entries.every((e) => e.state.healthy);
  }

  /** Whether a service failed beyond its restart budget (cheap: asked on every heartbeat tick). */
  anyEscalated(): boolean {
    return this.entries.some((e) => e.state.escalated);
  }

  history(): MonitorHistorySnapshot {
    return this.hist.snapshot();
  }

  private async loop(e: Entry, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.enqueue(e);
      if (signal.aborted) break;
      // Probes start on the interval's wall-clock grid (util/cadence.ts), so they share the heartbeat
      // tick's wake-up; the gap after a slow probe is still at least half an interval.
      await this.opts.clock.sleep(gridDelayMs(e.spec.intervalMs, this.opts.clock.nowMs(), e.spec.intervalMs / 2), signal);
    }
  }

  private enqueue(e: Entry): Promise<void> {
    const next = e.chain.then(() => this.check(e));
    e.chain = next.catch(() => undefined);
    return next;
  }

  private mode(): PolicyMode {
    if (this.paused) return 'paused';
    return this.active ? 'active' : 'standby';
  }

  private async check(e: Entry): Promise<void> {
    const result = await this.runProbe(e);
    const clock = this.opts.clock;
    const at = new Date(clock.nowMs()).toISOString();
    const nowMono = clock.monotonicMs();
    const { state, decision } = evaluateProbe(e.state, result.ok, nowMono, e.config, this.mode());
    e.state = state;
    e.lastProbe = { ...result, at };
    e.lastReason = decision.reason;
    this.hist.addCheck({ service: e.name, at, ...result, action: decision.action, reason: decision.reason });
    if (decision.incidentOpened) this.onIncidentOpened(e, result, decision, nowMono);
    switch (decision.action) {
      case 'none':
        return;
      case 'restart':
        return this.restart(e, decision);
      case 'escalate':
        return this.escalate(e, decision);
      case 'recovered':
        return this.recovered(e, decision, at);
      default:
        return assertNever(decision.action, 'policy action');
    }
  }

  private async runProbe(e: Entry): Promise<ProbeResult> {
    const timeoutMs = e.spec.timeoutMs;
    const started = this.opts.clock.monotonicMs();
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<ProbeResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ ok: false, latencyMs: timeoutMs + PROBE_GRACE_MS, detail: `probe hung past ${timeoutMs} ms` }),
        timeoutMs + PROBE_GRACE_MS,
      );
    });
    try {
      return await Promise.race([
        e.probe(timeoutMs).catch(
          (err: unknown): ProbeResult => ({
            ok: false,
            latencyMs: this.opts.clock.monotonicMs() - started,
            detail: `probe error: ${errorMessage(err)}`,
          }),
        ),
        guard,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private onIncidentOpened(e: Entry, result: ProbeResult, d: PolicyDecision, nowMono: number): void {
    const firstFailureMono = e.state.incidentStartMs ?? nowMono;
    const startedAt = new Date(this.opts.clock.nowMs() - (nowMono - firstFailureMono)).toISOString();
    this.hist.openIncidentFor(e.name, startedAt);
    this.opts.bus.emit({
      type: 'service_failed',
      severity: 'warning',
      message: `service ${e.name} failed: ${result.detail}`,
      details: {
        service: e.name,
        detail: result.detail,
        consecutiveFailures: e.config.failuresBeforeAction,
        active: this.active,
        paused: this.paused,
        decision: d.action,
        reason: d.reason,
      },
    });
  }

  private async restart(e: Entry, d: PolicyDecision): Promise<void> {
    const clock = this.opts.clock;
    const started = clock.monotonicMs();
    const attempt = e.state.restartTimesMs.length;
    let error: string | undefined;
    try {
      await e.spec.controller.stop();
      await e.spec.controller.start();
    } catch (err) {
      error = errorMessage(err);
    }
    const durationMs = Math.round(clock.monotonicMs() - started);
    const at = new Date(clock.nowMs()).toISOString();
    this.hist.addRestart({
      service: e.name,
      at,
      attempt,
      ok: error === undefined,
      durationMs,
      reason: d.reason,
      ...(error !== undefined ? { error } : {}),
    });
    const details = {
      service: e.name,
      attempt,
      maxRestarts: e.config.maxRestarts,
      windowMs: e.config.windowMs,
      durationMs,
      ok: error === undefined,
      reason: d.reason,
      ...(error !== undefined ? { error } : {}),
    };
    this.opts.bus.emit(
      error === undefined
        ? {
            type: 'service_restarted',
            severity: 'warning',
            message: `restarted ${e.name} (attempt ${attempt} of ${e.config.maxRestarts}) in ${durationMs} ms`,
            details,
          }
        : {
            type: 'service_restart_failed',
            severity: 'critical',
            message: `restart of ${e.name} (attempt ${attempt}) failed: ${error}`,
            details,
          },
    );
  }

  private escalate(e: Entry, d: PolicyDecision): void {
    const at = new Date(this.opts.clock.nowMs()).toISOString();
    this.hist.addEscalation({ service: e.name, at, reason: d.reason });
    this.opts.bus.emit({
      type: 'service_escalated',
      severity: 'critical',
      message: `service ${e.name} escalated: ${d.reason}`,
      details: {
        service: e.name,
        restartsInWindow: e.state.restartTimesMs.length,
        windowMs: e.config.windowMs,
        reason: d.reason,
      },
    });
    const cb = this.opts.onEscalate;
    if (cb) {
      // Not awaited: the agent may stop this monitor from inside the callback.
      void Promise.resolve()
        .then(() => cb(e.name, d.reason))
        .catch((err: unknown) =>
          this.opts.bus.emit({
            type: 'monitor_error',
            severity: 'warning',
            message: `escalation handler for ${e.name} failed: ${errorMessage(err)}`,
            details: { service: e.name },
          }),
        );
    }
  }

  private recovered(e: Entry, d: PolicyDecision, at: string): void {
    const recoveryMs = Math.round(d.incidentDurationMs ?? 0);
    const incident = this.hist.closeIncident(e.name, at, recoveryMs);
    this.opts.bus.emit({
      type: 'service_recovered',
      severity: 'info',
      message: `service ${e.name} recovered after ${Math.round(recoveryMs / 100) / 10} s`,
      details: {
        service: e.name,
        recoveryMs,
        restarts: d.incidentRestarts ?? 0,
        escalated: incident?.escalated ?? false,
        reason: d.reason,
      },
    });
  }
}
