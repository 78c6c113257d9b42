import type { Clock, Role, ServiceController } from '../ports.js';
import type { EventBus } from '../events/bus.js';
import type { HealthSource, RoleHooks } from '../ports.js';
import type { ClusterConfig, ServiceConfig } from '../config/schema.js';
import { ServiceMonitor, type MonitoredService } from '../monitor/monitor.js';
import { monitoredService } from '../monitor/from-config.js';
import { CommandService } from '../../adapters/command/service.js';
import { ProcessService } from '../../adapters/command/process.js';
import { childEnv } from '../util/child-env.js';

/** Longest wait for a service started on promotion to answer its probe. */
const START_GRACE_MS = 15_000;

/** A service with no control: probed only. */
class ProbeOnly implements ServiceController {
  constructor(readonly name: string) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async probe() {
    return { ok: true, latencyMs: 0, detail: 'no control configured' };
  }
}

export function makeController(s: ServiceConfig): ServiceController {
  const c = s.control;
  switch (c.kind) {
    case 'command':
      return new CommandService(s.name, { start: c.start, stop: c.stop, probe: 'true' }, c.timeoutMs);
    case 'process':
      return new ProcessService(s.name, {
        command: c.command,
        cwd: c.cwd,
        env: childEnv(c.env),
        logFile: c.logFile,
        pidFile: c.pidFile,
        stopTimeoutMs: c.stopTimeoutMs,
        startGraceMs: c.startGraceMs,
      });
    case 'none':
      return new ProbeOnly(s.name);
    default: {
      const never: never = c;
      throw new Error(`unknown control ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Probe periods: a service's own `intervalMs`, else the timing profile's (`timings.probeMs`: 2 s with
 * `fast`, 5 s with `frugal`).
 */
export function probePeriods(cfg: Pick<ClusterConfig, 'services' | 'nimbus' | 'timings'>): {
  services: (ServiceConfig & { intervalMs: number })[];
  /** The `nimbus` section's probe period (when the section is present). */
  nimbusMs: number;
} {
  return {
    services: cfg.services.map((s) => ({ ...s, intervalMs: s.intervalMs ?? cfg.timings.probeMs })),
    nimbusMs: cfg.nimbus?.monitor.intervalMs ?? cfg.timings.probeMs,
  };
}

/**
 * Services of a node: those that run everywhere are probed all the time (restarted only on the
 * primary); those that run on the primary only are started on promotion, stopped on demotion, and
 * probed only while they should run, so a standby is not "unhealthy" for a service it must not run.
 */
export function buildServices(
  /** With the probe period resolved (`intervalMs ?? timings.probeMs`). */
  services: readonly (ServiceConfig & { intervalMs: number })[],
  bus: EventBus,
  clock: Clock,
  /** Services built by the composition root from dedicated sections (e.g. `nimbus`). */
  extra: { service: MonitoredService; runOn: 'primary' | 'all' }[] = [],
): { health: HealthSource; hooks: RoleHooks; start(): void; stop(): Promise<void>; monitors: ServiceMonitor[] } {
  const all: { service: MonitoredService; runOn: 'primary' | 'all' }[] = [
    ...services.map((s) => ({ service: monitoredService(s, makeController(s)), runOn: s.runOn })),
    ...extra,
  ];
  const everywhere = all.filter((s) => s.runOn === 'all').map((s) => s.service);
  const primaryOnly = all.filter((s) => s.runOn === 'primary').map((s) => s.service);
  const primaryControllers = primaryOnly.map((s) => s.controller);
  const allMon = new ServiceMonitor({ services: everywhere, bus, clock });
  const primMon = new ServiceMonitor({ services: primaryOnly, bus, clock, active: true });
  let role: Role = 'starting';
  let paused = false;
  let primaryRunning = false;
  const monitors = [allMon, primMon];

  const startPrimaryServices = async () => {
    for (const s of primaryOnly) {
      const c = s.controller;
      try {
        await c.start();
      } catch (err) {
        bus.emit({ type: 'service_start_failed', severity: 'critical', message: `${c.name}: ${(err as Error).message}` });
        continue;
      }
      // Start-up grace: wait until the service answers before the VIP sends clients to it and before
      // the monitor may count a booting service as failed.
      const probe = s.probe ?? ((ms: number) => c.probe(ms));
      const until = clock.monotonicMs() + START_GRACE_MS;
      while (clock.monotonicMs() < until) {
        if ((await probe(Math.min(s.timeoutMs, 2000)).catch(() => ({ ok: false }))).ok) break;
        await clock.sleep(100);
      }
    }
    primMon.reset();
    primMon.start();
    primaryRunning = true;
  };
  const stopPrimaryServices = async () => {
    await primMon.stop();
    primaryRunning = false;
    for (const c of primaryControllers) await c.stop().catch(() => undefined);
  };

  // Maintenance: probe and report only, no restart and no escalation (a primary in maintenance keeps
  // its role, so the flag and not only the role decides).
  const applyPause = () => {
    if (paused || role === 'maintenance') monitors.forEach((m) => m.pause());
    else monitors.forEach((m) => m.resume());
  };
  const health: HealthSource = {
    healthy: () => allMon.allHealthy() && (!primaryRunning || primMon.allHealthy()),
    escalated: () => monitors.some((m) => m.anyEscalated()),
    status: () => [...allMon.status().map((s) => ({ ...s, runOn: 'all' })), ...primMon.status().map((s) => ({ ...s, runOn: 'primary', running: primaryRunning }))],
    setRole(next: Role) {
      role = next;
      allMon.setActive(next === 'primary');
      applyPause();
    },
    setPaused(on: boolean) {
      if (on === paused) return;
      paused = on;
      applyPause();
    },
  };
  const hooks: RoleHooks = {
    name: 'services',
    async onPromote() {
      allMon.reset();
      if (primaryControllers.length) await startPrimaryServices();
    },
    async onDemote() {
      if (primaryControllers.length) await stopPrimaryServices();
    },
  };
  return {
    health,
    hooks,
    monitors,
    start: () => {
      allMon.start();
      void role;
    },
    stop: async () => {
      await allMon.stop();
      await primMon.stop();
    },
  };
}
