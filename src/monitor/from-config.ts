/**
 * One configured service (the `services` entries of the node config, src/config/schema.ts) as the
 * ServiceMonitor takes it.
 */
import type { ServiceController } from '../ports.js';
import type { PolicyConfig, ProbeSpec } from './config.js';
import type { MonitoredService } from './monitor.js';
import { createProbe } from './probes.js';

/** One service's config (probe, pace, policy) and its controller, as the monitor takes them. */
export function monitoredService(
  s: PolicyConfig & { probe: ProbeSpec; intervalMs: number; timeoutMs: number },
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
