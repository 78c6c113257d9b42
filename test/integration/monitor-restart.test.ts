import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventBus } from '../../src/events/bus.js';
import { systemClock } from '../../src/clock.js';
import { ServiceMonitor } from '../../src/monitor/monitor.js';
import { httpProbe } from '../../src/monitor/probes.js';
import type { HaEvent, ProbeResult, ServiceController } from '../../src/ports.js';
import { freePort } from '../../fixtures/ports.js';


/** A real HTTP service in a child process, controlled like a protected service would be. */
class ChildHttpService implements ServiceController {
  readonly name = 'demo-service';
  child: ChildProcess | null = null;
  starts = 0;
  constructor(private readonly port: number) {}
  async start(): Promise<void> {
    this.starts++;
    const code = `require('http').createServer((q,s)=>s.end('up')).listen(${this.port},'127.0.0.1')`;
    this.child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  }
  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  }
  probe(timeoutMs: number): Promise<ProbeResult> {
    return httpProbe({ url: `http://127.0.0.1:${this.port}/`, bodyContains: 'up' })(timeoutMs);
  }
  crash(): void {
    this.child?.kill('SIGKILL');
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(active: boolean) {
  const svc = new ChildHttpService(await freePort());
  const bus = new EventBus('head-a', () => 1);
  const events: HaEvent[] = [];
  bus.on((e) => events.push(e));
  const monitor = new ServiceMonitor({
    services: [
      { controller: svc, intervalMs: 100, timeoutMs: 500, policy: { backoff: { baseMs: 3_000, maxMs: 3_000 } } },
    ],
    bus,
    clock: systemClock,
    active,
  });
  cleanups.push(async () => {
    await monitor.stop();
    await svc.stop();
  });
  await svc.start();
  // The service must be up before monitoring starts, or the monitor would (rightly) restart it.
  const end = Date.now() + 15_000;
  while (!(await svc.probe(500)).ok) {
    if (Date.now() > end) throw new Error('demo service did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
  monitor.start();
  await waitFor('a successful probe', () => monitor.status()[0].lastProbe?.ok === true);
  return { svc, monitor, events };
}

describe('ServiceMonitor with a real process', () => {
  it('restarts a crashed service on the primary and reports its recovery time', async () => {
    const { svc, monitor, events } = await setup(true);
    const firstPid = svc.child?.pid;
    svc.crash();
    await waitFor('service_recovered', () => events.some((e) => e.type === 'service_recovered'));
    expect(events.map((e) => e.type)).toEqual(['service_failed', 'service_restarted', 'service_recovered']);
    expect(svc.starts).toBe(2);
    expect(svc.child?.pid).not.toBe(firstPid);
    const recovered = events[2].details as { recoveryMs: number; restarts: number };
    expect(recovered.restarts).toBe(1);
    // at least failuresBeforeAction probes (2 x 100 ms) plus recoverAfter probes; well under 10 s
    expect(recovered.recoveryMs).toBeGreaterThanOrEqual(200);
    expect(recovered.recoveryMs).toBeLessThan(10_000);
    expect(monitor.allHealthy()).toBe(true);
    expect(monitor.history().incidents).toMatchObject([{ service: 'demo-service', restarts: 1, escalated: false }]);
  });

  it('only reports on a standby node, and restarts once promoted', async () => {
    const { svc, monitor, events } = await setup(false);
    svc.crash();
    await waitFor('service_failed', () => events.some((e) => e.type === 'service_failed'));
    await new Promise((r) => setTimeout(r, 500));
    expect(svc.starts).toBe(1);
    expect(monitor.allHealthy()).toBe(false);
    monitor.setActive(true);
    await waitFor('service_recovered', () => events.some((e) => e.type === 'service_recovered'));
    expect(svc.starts).toBe(2);
  });
});
