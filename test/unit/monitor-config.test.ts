import { describe, expect, it } from 'vitest';
import { monitorConfigSchema, notifyConfigSchema, probeSpecSchema } from '../../src/monitor/config.js';
import { createProbe } from '../../src/monitor/probes.js';

describe('monitor config', () => {
  it('fills defaults for a minimal service', () => {
    const cfg = monitorConfigSchema.parse({
      services: [{ name: 'vm-service', probe: { kind: 'http', url: 'http://127.0.0.1:8443/health' } }],
    });
    expect(cfg.historySize).toBe(500);
    expect(cfg.services[0]).toEqual({
      name: 'vm-service',
      probe: { kind: 'http', url: 'http://127.0.0.1:8443/health', expectStatusMin: 200, expectStatusMax: 399 },
      intervalMs: 5_000,
      timeoutMs: 3_000,
      failuresBeforeAction: 2,
      maxRestarts: 4,
      windowMs: 600_000,
      backoff: { baseMs: 5_000, maxMs: 60_000 },
      recoverAfter: 2,
    });
    expect(monitorConfigSchema.parse({})).toEqual({ services: [], historySize: 500 });
  });

  it('rejects unknown keys, a wrong kind and an inverted status range, all at once', () => {
    const r = monitorConfigSchema.safeParse({
      services: [
        { name: 'a', probe: { kind: 'tcp', host: 'h', port: 1 }, maxRestart: 3 },
        { name: 'c', probe: { kind: 'ftp' } },
        { name: 'b', probe: { kind: 'http', url: 'http://x/', expectStatusMin: 500, expectStatusMax: 200 } },
      ],
    });
    expect(r.success).toBe(false);
    const messages = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages.some((m) => m.startsWith('services.0:') && /maxRestart/.test(m))).toBe(true);
    expect(messages.some((m) => m.startsWith('services.1.probe.kind'))).toBe(true);
    expect(messages.some((m) => m.includes('expectStatusMin must not exceed expectStatusMax'))).toBe(true);
  });

  it('rejects duplicate service names', () => {
    const svc = { name: 'a', probe: { kind: 'tcp', host: 'h', port: 1 } };
    const r = monitorConfigSchema.safeParse({ services: [svc, svc] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({ path: ['services', 1, 'name'], message: 'duplicate service name "a"' });
  });

  it('builds a probe for every kind', () => {
    const specs = [
      { kind: 'http', url: 'http://127.0.0.1:1/' },
      { kind: 'tcp', host: '127.0.0.1', port: 1 },
      { kind: 'postgres', connectionString: 'postgres://u@127.0.0.1:1/db' },
      { kind: 's3', endpoint: 'http://127.0.0.1:1', bucket: 'b' },
      { kind: 'command', command: 'true' },
    ];
    for (const s of specs) expect(typeof createProbe(probeSpecSchema.parse(s))).toBe('function');
  });

  it('describes the sections and their fields', () => {
    expect(monitorConfigSchema.description).toMatch(/Service monitoring/);
    expect(notifyConfigSchema.description).toMatch(/notifications/);
    expect(monitorConfigSchema.shape.historySize.description).toMatch(/Entries kept/);
  });
});

describe('notify config', () => {
  it('fills webhook and email defaults', () => {
    const cfg = notifyConfigSchema.parse({
      webhook: { url: 'https://hooks.example.test/ha' },
      email: { smtp: { host: 'smtp.example.test' }, from: 'ha@example.test', to: ['ops@example.test'] },
      events: ['failover'],
    });
    expect(cfg.webhook).toEqual({
      url: 'https://hooks.example.test/ha',
      timeoutMs: 5_000,
      retries: 3,
      backoffMs: 500,
      maxBackoffMs: 10_000,
      headers: {},
    });
    expect(cfg.email?.smtp).toEqual({ host: 'smtp.example.test', port: 587, secure: false, timeoutMs: 10_000 });
    expect(notifyConfigSchema.parse(undefined)).toEqual({});
  });

  it('rejects an email section without recipients and unknown keys', () => {
    const r = notifyConfigSchema.safeParse({
      email: { smtp: { host: 'h', tls: true }, from: 'a@b.c', to: [] },
    });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['email.smtp', 'email.to']));
  });
});

describe('createServiceMonitor', () => {
  it('names configured services that have no controller', async () => {
    const { createServiceMonitor } = await import('../../src/monitor/from-config.js');
    const { EventBus } = await import('../../src/events/bus.js');
    const { systemClock } = await import('../../src/clock.js');
    const cfg = monitorConfigSchema.parse({
      services: [{ name: 'vm-service', probe: { kind: 'tcp', host: '127.0.0.1', port: 1 } }],
    });
    const bus = new EventBus('n', () => 1);
    expect(() => createServiceMonitor(cfg, { controllers: {}, bus, clock: systemClock })).toThrow(
      /monitor.services names "vm-service" but no service controller/,
    );
    const controller = { name: 'vm-service', start: async () => {}, stop: async () => {}, probe: async () => ({ ok: true, latencyMs: 0, detail: '' }) };
    const m = createServiceMonitor(cfg, { controllers: new Map([['vm-service', controller]]), bus, clock: systemClock });
    expect(m.status().map((s) => s.name)).toEqual(['vm-service']);
  });
});
