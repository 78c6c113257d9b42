import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';
import { ServiceMonitor, type MonitoredService } from '../../src/monitor/monitor.js';
import { systemClock } from '../../src/clock.js';
import type { Clock, ProbeResult, ServiceController } from '../../src/ports.js';
import { manualClock } from '../helpers/manual-clock.js';

/** A clock the test moves by hand; sleep is not used by checkNow(). */
function handClock(): Clock & { advance(ms: number): void } {
  let t = 1_000_000;
  return Object.assign(manualClock(() => t, 1_700_000_000_000), {
    advance(ms: number) {
      t += ms;
    },
  });
}

/** A service whose health the test sets; counts start/stop calls. */
class FakeService implements ServiceController {
  healthy = true;
  starts = 0;
  stops = 0;
  probes = 0;
  failStart = false;
  constructor(readonly name: string) {}
  async start() {
    this.starts++;
    if (this.failStart) throw new Error('start script exited 1');
  }
  async stop() {
    this.stops++;
  }
  async probe(): Promise<ProbeResult> {
    this.probes++;
    return { ok: this.healthy, latencyMs: 1, detail: this.healthy ? 'ok' : 'connection refused' };
  }
}

function setup(svcOpts: Partial<MonitoredService> = {}, active = true) {
  const clock = handClock();
  const bus = new EventBus('node-a', () => 3, { nowMs: clock.nowMs });
  const svc = new FakeService('vm-service');
  const escalations: string[] = [];
  const monitor = new ServiceMonitor({
    services: [{ controller: svc, intervalMs: 5_000, timeoutMs: 1_000, policy: { backoff: { baseMs: 1 } }, ...svcOpts }],
    bus,
    clock,
    active,
    onEscalate: (name, reason) => {
      escalations.push(`${name}: ${reason}`);
    },
  });
  const step = async (healthy: boolean) => {
    svc.healthy = healthy;
    clock.advance(5_000);
    await monitor.checkNow();
  };
  const types = () => bus.recent().map((e) => e.type);
  return { clock, bus, svc, monitor, step, types, escalations };
}

describe('ServiceMonitor', () => {
  it('restarts a failed service on the active node and reports the recovery time of the incident', async () => {
    const { svc, monitor, step, types, bus } = setup();
    await step(true);
    await step(false);
    expect(svc.starts).toBe(0);
    expect(monitor.allHealthy()).toBe(true);
    await step(false);
    expect([svc.stops, svc.starts]).toEqual([1, 1]);
    expect(monitor.allHealthy()).toBe(false);
    await step(true);
    expect(monitor.allHealthy()).toBe(false); // hysteresis: one success is not enough
    await step(true);
    expect(monitor.allHealthy()).toBe(true);
    expect(types()).toEqual(['service_failed', 'service_restarted', 'service_recovered']);
    const recovered = bus.recent({ types: ['service_recovered'] })[0];
    // first failure at step 2, recovery at step 5: 3 intervals of 5 s
    expect(recovered.details).toMatchObject({ service: 'vm-service', recoveryMs: 15_000, restarts: 1 });
    const h = monitor.history();
    expect(h.checks).toHaveLength(5);
    expect(h.restarts).toMatchObject([{ service: 'vm-service', attempt: 1, ok: true }]);
    expect(h.incidents).toMatchObject([{ service: 'vm-service', recoveryMs: 15_000, restarts: 1, escalated: false }]);
    expect(h.incidents[0].recoveredAt).not.toBeNull();
  });

  it('only probes on a standby node', async () => {
    const { svc, monitor, step, types } = setup({}, false);
    for (let i = 0; i < 5; i++) await step(false);
    expect(svc.starts + svc.stops).toBe(0);
    expect(types()).toEqual(['service_failed']);
    const [st] = monitor.status();
    expect(st).toMatchObject({ name: 'vm-service', healthy: false, consecutiveFailures: 5, restartsInWindow: 0 });
    expect(st.lastProbe).toMatchObject({ ok: false, detail: 'connection refused' });
    expect(st.lastReason).toMatch(/standby, so monitoring only/);
    // becoming primary with the service still down: restart on the next failed probe
    monitor.setActive(true);
    await step(false);
    expect(svc.starts).toBe(1);
  });

  it('escalates once restarts are exhausted and calls onEscalate', async () => {
    const { svc, monitor, step, types, escalations } = setup({ policy: { maxRestarts: 2, backoff: { baseMs: 1 } } });
    for (let i = 0; i < 8; i++) await step(false);
    expect(svc.starts).toBe(2);
    expect(types()).toEqual(['service_failed', 'service_restarted', 'service_restarted', 'service_escalated']);
    await new Promise((r) => setImmediate(r));
    expect(escalations).toHaveLength(1);
    expect(escalations[0]).toMatch(/^vm-service: .*escalating to a handover$/);
    expect(monitor.status()[0]).toMatchObject({ escalated: true, restartsInWindow: 2 });
    expect(monitor.history().escalations).toHaveLength(1);
    await step(true);
    await step(true);
    expect(monitor.status()[0].escalated).toBe(false);
    expect(monitor.history().incidents[0]).toMatchObject({ escalated: true, restarts: 2 });
  });

  it('takes no action while paused and acts again after resume', async () => {
    const { svc, monitor, step } = setup();
    monitor.pause();
    for (let i = 0; i < 4; i++) await step(false);
    expect(svc.starts).toBe(0);
    monitor.resume();
    await step(false);
    expect(svc.starts).toBe(1);
  });

  it('records a failed restart as service_restart_failed', async () => {
    const { svc, monitor, step, bus } = setup();
    svc.failStart = true;
    await step(false);
    await step(false);
    const [ev] = bus.recent({ types: ['service_restart_failed'] });
    expect(ev.details).toMatchObject({ ok: false, error: 'start script exited 1' });
    expect(monitor.history().restarts[0]).toMatchObject({ ok: false, error: 'start script exited 1' });
  });

  it('counts a probe that throws, and one that never settles, as failures', async () => {
    const clock = handClock();
    const bus = new EventBus('n', () => 1);
    const svc = new FakeService('s');
    const monitor = new ServiceMonitor({
      services: [
        { controller: svc, probe: () => Promise.reject(new Error('boom')), intervalMs: 10, timeoutMs: 10 },
        { controller: new FakeService('hang'), probe: () => new Promise(() => undefined), intervalMs: 10, timeoutMs: 20 },
      ],
      bus,
      clock,
    });
    await monitor.checkNow();
    const st = monitor.status();
    expect(st[0].lastProbe).toMatchObject({ ok: false, detail: 'probe error: boom' });
    expect(st[1].lastProbe).toMatchObject({ ok: false, detail: 'probe hung past 20 ms' });
  });

  it('runs probes on timers between start() and stop(), and none after stop()', async () => {
    const bus = new EventBus('n', () => 1);
    const svc = new FakeService('timed');
    const monitor = new ServiceMonitor({
      services: [{ controller: svc, intervalMs: 20, timeoutMs: 100 }],
      bus,
      clock: systemClock,
    });
    monitor.start();
    monitor.start(); // idempotent: still one loop
    await new Promise((r) => setTimeout(r, 250));
    await monitor.stop();
    const n = svc.probes;
    // one loop at 20 ms: roughly 10 probes; two loops would give about 20
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(14);
    await new Promise((r) => setTimeout(r, 100));
    expect(svc.probes).toBe(n);
  });

  it('rejects duplicate service names and unknown names in checkNow', async () => {
    const bus = new EventBus('n', () => 1);
    const a = new FakeService('x');
    expect(
      () =>
        new ServiceMonitor({
          services: [
            { controller: a, intervalMs: 1, timeoutMs: 1 },
            { controller: a, intervalMs: 1, timeoutMs: 1 },
          ],
          bus,
          clock: systemClock,
        }),
    ).toThrow(/duplicate/);
    const m = new ServiceMonitor({ services: [{ controller: a, intervalMs: 1, timeoutMs: 1 }], bus, clock: systemClock });
    await expect(m.checkNow('nope')).rejects.toThrow(/unknown service/);
  });
});
