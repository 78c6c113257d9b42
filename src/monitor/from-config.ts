/**
 * Builds a ServiceMonitor from the `monitor` config section and the controllers the CLI wired.
 */
import type { Clock, ServiceController } from '../ports.js';
import { HaError } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { MonitorConfig } from './config.js';
import { ServiceMonitor, type MonitoredService } from './monitor.js';
import { createProbe } from './probes.js';

/** One service's config (probe, pace, policy) and its controller, as the monitor takes them. */
export function monitoredService(
  s: Pick<MonitorConfig['services'][number], 'probe' | 'intervalMs' | 'timeoutMs' | 'failuresBeforeAction' | 'maxRestarts' | 'windowMs' | 'backoff' | 'recoverAfter'>,
  controller: ServiceController,
): MonitoredService {
  return {
    controller,
    probe: createProbe(s.probe),
    intervalMs: s.intervalMs,
    timeoutMs: s.timeoutMs,
    policy: {
      failuresBeforeAction: s.failuresBeforeAction,
      maxRestarts: s.maxRestarts,
      windowMs: s.windowMs,
      backoff: s.backoff,
      recoverAfter: s.recoverAfter,
    },
  };
}

export function createServiceMonitor(
  config: MonitorConfig,
  deps: {
    /** Controllers by service name; every configured service needs one. */
    controllers: Map<string, ServiceController> | Record<string, ServiceController>;
    bus: EventBus;
    clock: Clock;
    active?: boolean;
    onEscalate?: (service: string, reason: string) => void | Promise<void>;
  },
): ServiceMonitor {
  const lookup = (name: string) =>
    deps.controllers instanceof Map ? deps.controllers.get(name) : deps.controllers[name];
  const missing = config.services.map((s) => s.name).filter((n) => !lookup(n));
  if (missing.length) {
    throw new HaError(
      'CONFIG_INVALID',
      `monitor.services names ${missing.map((n) => `"${n}"`).join(', ')} but no service controller of that ` +
        'name is configured; fix the name or add the service',
    );
  }
  return new ServiceMonitor({
    services: config.services.map((s) => monitoredService(s, lookup(s.name)!)),
    bus: deps.bus,
    clock: deps.clock,
    historySize: config.historySize,
    ...(deps.active !== undefined ? { active: deps.active } : {}),
    ...(deps.onEscalate ? { onEscalate: deps.onEscalate } : {}),
  });
}
