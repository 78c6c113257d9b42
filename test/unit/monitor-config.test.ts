import { describe, expect, it } from 'vitest';
import { notifyConfigSchema, probeSpecSchema } from '../../src/monitor/config.js';
import { createProbe } from '../../src/monitor/probes.js';

describe('monitor config', () => {
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

  it('describes the notify section', () => {
    expect(notifyConfigSchema.description).toMatch(/notifications/);
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
