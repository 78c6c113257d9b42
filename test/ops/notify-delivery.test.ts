import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SMTPServer } from 'smtp-server';
import { EventBus } from '../../src/events/bus.js';
import { HaError } from '../../src/errors.js';
import type { HaEvent } from '../../src/ports.js';
import { WebhookNotifier } from '../../adapters/notify/webhook.js';
import { EmailNotifier } from '../../adapters/notify/email.js';

interface Received {
  type: string;
  attempt: number;
}

/** Local webhook receiver: records every attempt; some event types fail a few times or hang. */
let http: Server;
let httpPort = 0;
const attempts: Received[] = [];
const failFirst: Record<string, number> = { service_restarted: 2, bad_request: 99 };
const hangTypes = new Set(['service_escalated']);
const hung: ServerResponse[] = [];
const authHeaders: string[] = [];

/** Local SMTP sink: records the subject of every message. */
let smtp: SMTPServer;
let smtpPort = 0;
const subjects: string[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => resolve(s));
  });
}

beforeAll(async () => {
  http = createServer(async (req, res) => {
    const event = JSON.parse(await readBody(req)) as HaEvent;
    authHeaders.push(String(req.headers.authorization));
    const n = attempts.filter((a) => a.type === event.type).length + 1;
    attempts.push({ type: event.type, attempt: n });
    if (hangTypes.has(event.type)) {
      hung.push(res);
      return;
    }
    if (n <= (failFirst[event.type] ?? 0)) {
      res.statusCode = event.type === 'bad_request' ? 400 : 500;
      res.end('no');
      return;
    }
    res.statusCode = 204;
    res.end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpPort = (http.address() as { port: number }).port;

  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      let raw = '';
      stream.on('data', (c: Buffer) => (raw += c.toString()));
      stream.on('end', () => {
        const m = /^Subject: (.*)$/m.exec(raw);
        subjects.push(m ? m[1].trim() : '(none)');
        callback();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  smtpPort = (smtp.server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const res of hung) res.destroy();
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  await new Promise<void>((r) => smtp.close(() => r()));
});

describe('notifications end to end', () => {
  it('delivers a sequence of events in order to the webhook and by mail, retrying and timing out', async () => {
    const webhook = new WebhookNotifier({
      url: `http://127.0.0.1:${httpPort}/hook`,
      timeoutMs: 400,
      retries: 2,
      backoffMs: 20,
      headers: { authorization: 'Bearer t0ken' },
    });
    const email = new EmailNotifier({
      smtp: { host: '127.0.0.1', port: smtpPort, timeoutMs: 5_000 },
      from: 'nimbus-ha@example.test',
      to: ['ops@example.test'],
    });
    const errors: Array<{ notifier: string; type: string; err: unknown }> = [];
    const bus = new EventBus('head-a', () => 7, {
      notifiers: [webhook, email],
      onNotifyError: (notifier, event, err) => errors.push({ notifier, type: event.type, err }),
    });
    const sequence = ['service_failed', 'service_restarted', 'service_escalated', 'failover', 'service_recovered'];
    const started = Date.now();
    for (const type of sequence) bus.emit({ type, severity: 'warning', message: `${type} happened` });
    await bus.flush();
    email.close();
    const elapsed = Date.now() - started;

    // webhook: first attempts in emission order; the flaky one retried until it succeeded
    const firstAttempts = attempts.filter((a) => a.attempt === 1).map((a) => a.type);
    expect(firstAttempts).toEqual(sequence);
    expect(attempts.filter((a) => a.type === 'service_restarted')).toHaveLength(3);
    // the hanging receiver: 3 attempts, each cut at the timeout, then the next event still went out
    expect(attempts.filter((a) => a.type === 'service_escalated')).toHaveLength(3);
    const lastEscalated = attempts.map((a) => a.type).lastIndexOf('service_escalated');
    expect(attempts.map((a) => a.type).indexOf('failover')).toBeGreaterThan(lastEscalated);
    expect(elapsed).toBeGreaterThanOrEqual(3 * 400);
    expect(elapsed).toBeLessThan(15_000);
    expect(errors).toHaveLength(1);
    expect(errors[0].type).toBe('service_escalated');
    expect(errors[0].err).toBeInstanceOf(HaError);
    expect((errors[0].err as HaError).code).toBe('NOTIFY_FAILED');
    expect((errors[0].err as HaError).message).toMatch(/after 3 attempt\(s\) \(no answer within 400 ms; /);
    expect(new Set(authHeaders)).toEqual(new Set(['Bearer t0ken']));

    // mail: every event, in order, with the documented subject
    expect(subjects).toEqual(sequence.map((t) => `[nimbus-ha] ${t} on head-a`));
  });

  it('does not retry a permanent client error (4xx)', async () => {
    const webhook = new WebhookNotifier({ url: `http://127.0.0.1:${httpPort}/hook`, retries: 3, backoffMs: 10 });
    const event: HaEvent = {
      type: 'bad_request',
      node: 'head-a',
      epoch: 1,
      time: new Date().toISOString(),
      severity: 'info',
      message: 'x',
    };
    await expect(webhook.send(event)).rejects.toThrow(/after 1 attempt\(s\) \(HTTP 400\)/);
    expect(attempts.filter((a) => a.type === 'bad_request')).toHaveLength(1);
  });

  it('reports an unreachable SMTP server as NOTIFY_FAILED', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const email = new EmailNotifier({ smtp: { host: '127.0.0.1', port, timeoutMs: 2_000 }, from: 'a@b.c', to: ['d@e.f'] });
    const event: HaEvent = { type: 'x', node: 'n', epoch: 1, time: new Date().toISOString(), severity: 'info', message: 'm' };
    await expect(email.send(event)).rejects.toMatchObject({ code: 'NOTIFY_FAILED' });
    email.close();
  });
});

describe('createNotifiers', () => {
  it('builds the configured notifiers and passes the event filter through', async () => {
    const { createNotifiers } = await import('../../adapters/notify/index.js');
    const { notifyConfigSchema } = await import('../../src/monitor/config.js');
    const built = createNotifiers(
      notifyConfigSchema.parse({
        webhook: { url: `http://127.0.0.1:${httpPort}/hook` },
        email: { smtp: { host: '127.0.0.1', port: smtpPort }, from: 'a@example.test', to: ['b@example.test'] },
        events: ['failover'],
      }),
    );
    expect(built.notifiers.map((n) => n.name)).toEqual([`webhook http://127.0.0.1:${httpPort}`, `email 127.0.0.1:${smtpPort}`]);
    expect(built.notifyTypes).toEqual(['failover']);
    const bus = new EventBus('head-b', () => 1, { notifiers: built.notifiers, notifyTypes: built.notifyTypes });
    const before = subjects.length;
    bus.emit({ type: 'service_failed', severity: 'warning', message: 'filtered out' });
    bus.emit({ type: 'failover', severity: 'critical', message: 'sent' });
    await bus.flush();
    built.close();
    expect(subjects.slice(before)).toEqual(['[nimbus-ha] failover on head-b']);
  });
});

describe('signed webhooks', () => {
  it('every attempt carries a timestamp and an HMAC-SHA256 signature the documented check accepts; a forged or altered delivery fails it', async () => {
    const { createHmac, timingSafeEqual } = await import('node:crypto');
    const secret = 'webhook-signing-key-0123456789';
    // The receiver's check, as docs/monitoring.md gives it.
    const verify = (key: string, headers: IncomingMessage['headers'], body: string, nowSeconds: number): boolean => {
      const ts = Number(headers['x-nimbus-ha-timestamp']);
      const sig = String(headers['x-nimbus-ha-signature'] ?? '');
      if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > 300) return false;
      const want = Buffer.from(`v1=${createHmac('sha256', key).update(`${ts}.${body}`).digest('hex')}`);
      const got = Buffer.from(sig);
      return got.length === want.length && timingSafeEqual(got, want);
    };
    const got: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
    let failures = 1;
    const server = createServer(async (req, res) => {
      got.push({ headers: req.headers, body: await readBody(req) });
      res.statusCode = failures-- > 0 ? 503 : 204;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      let now = 1_800_000_000;
      const hook = new WebhookNotifier({ url: `http://127.0.0.1:${port}/hook`, secret, backoffMs: 1, nowSeconds: () => now++ });
      const bus = new EventBus('head-a', () => 7, { notifiers: [hook] });
      bus.emit({ type: 'vote_granted', severity: 'info', message: 'no details given' });
      await bus.flush();
      expect(got).toHaveLength(2); // one 503, then delivered
      for (const d of got) {
        expect(verify(secret, d.headers, d.body, Number(d.headers['x-nimbus-ha-timestamp']))).toBe(true);
        expect(JSON.parse(d.body)).toMatchObject({ type: 'vote_granted', node: 'head-a', epoch: 7, details: {} });
      }
      // Each attempt is signed afresh.
      expect(got[0].headers['x-nimbus-ha-timestamp']).not.toBe(got[1].headers['x-nimbus-ha-timestamp']);
      const d = got[1];
      const at = Number(d.headers['x-nimbus-ha-timestamp']);
      expect(verify('another-key-0123456789abcdef', d.headers, d.body, at)).toBe(false);
      expect(verify(secret, d.headers, d.body.replace('vote_granted', 'failover'), at)).toBe(false);
      expect(verify(secret, { ...d.headers, 'x-nimbus-ha-timestamp': String(at + 1) }, d.body, at)).toBe(false);
      expect(verify(secret, d.headers, d.body, at + 3600)).toBe(false); // replayed an hour later
      // Without a secret nothing is signed.
      got.length = 0;
      failures = 0;
      await new WebhookNotifier({ url: `http://127.0.0.1:${port}/hook` }).send({ type: 'x', node: 'n', epoch: 1, time: new Date().toISOString(), severity: 'info', message: 'm', details: {} });
      expect(got[0].headers['x-nimbus-ha-signature']).toBeUndefined();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
