import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, DB_PASSWORD } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { prepareThroughVip, sleep, until as untilEvery } from '../helpers/wait.js';

const until = (what: string, fn: () => Promise<boolean>, timeoutMs: number) => untilEvery(what, fn, timeoutMs, 100);

function killVmService(c: Cluster, node: 'a' | 'b'): boolean {
  try {
    const pid = Number(readFileSync(join(c.nodes[node].dataDir, 'vm-service.pid'), 'utf8').trim().split(/\s/)[0]);
    process.kill(pid, 0);
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

describe('MONIT-style monitoring of the VM service: restart, then escalate to a graceful handover', () => {
  let c: Cluster;
  let hook: http.Server;
  let smtp: SMTPServer;
  const webhook: { node: string; type: string }[] = [];
  const mails: string[] = [];

  beforeAll(async () => {
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const e = JSON.parse(body);
        webhook.push({ node: e.node, type: e.type });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      onData(stream, _session, cb) {
        let raw = '';
        stream.on('data', (d: Buffer) => (raw += d.toString()));
        stream.on('end', () => {
          const subject = /^Subject: (.*)$/m.exec(raw)?.[1] ?? '';
          mails.push(subject.trim());
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const hookPort = (hook.address() as { port: number }).port;
    const smtpPort = (smtp.server.address() as { port: number }).port;
    const events = ['service_restarted', 'service_escalated', 'escalation_handover', 'handover_started', 'switchover'];
    c = new Cluster({
      db: { sync: 'sync' },
      repo: true,
      nimbus: true,
      nimbusMonitor: { intervalMs: 300, timeoutMs: 1000, failuresBeforeAction: 2, maxRestarts: 2, windowMs: 120_000, recoverAfter: 1, backoff: { baseMs: 100, maxMs: 200 } },
      extraConfig: () => ({
        notify: {
          webhook: { url: `http://127.0.0.1:${hookPort}/events`, timeoutMs: 2000, retries: 2 },
          email: { smtp: { host: '127.0.0.1', port: smtpPort, secure: false }, from: 'nimbus-ha@localhost', to: ['ops@localhost'] },
          events,
        },
      }),
    });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
    await until('VM service healthy on a', async () => (await c.status('a'))!.services.some((s: any) => s.name === 'nimbus' && s.running && s.lastProbe?.ok), 30_000);
  });
  afterAll(async () => {
    await c?.stop();
    hook?.close();
    smtp?.close();
  });

  it('a killed VM service is restarted while a stays primary; repeated failures hand the role to b with no row lost; webhook and email arrive in order', async () => {
    const w = new DbWriter(c.dbUrl, { everyMs: 10 });
    await prepareThroughVip(w);
    w.start();
    expect(killVmService(c, 'a')).toBe(true);
    await until('VM service restarted on a', async () => (await c.events('a', 'service_restarted')).length >= 1, 20_000);
    expect((await c.status('a'))!.role).toBe('primary');

    // Keep killing it: after maxRestarts (2) within the window the monitor escalates.
    const end = Date.now() + 60_000;
    while (Date.now() < end && (await c.status('b'))?.role !== 'primary') {
      killVmService(c, 'a');
      await sleep(150);
    }
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'b primary after escalation');
    const restarts = (await c.events('a', 'service_restarted')).length;
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(restarts).toBeLessThanOrEqual(2);
    expect((await c.events('a', 'service_escalated')).length).toBe(1);
    const acked = w.acked.length;
    await until('writes continue on b', async () => w.acked.length > acked + 20, 30_000);
    await w.stop();
    expect(await w.missing(`postgres://postgres:${DB_PASSWORD}@127.0.0.1:${c.nodes.b.pgPort}/postgres`)).toEqual([]);

    // Notifications from a: same events, same order, on both channels.
    await until('notifications delivered', async () => webhook.some((e) => e.node === 'a' && e.type === 'handover_started') && mails.some((m) => m.includes('handover_started')), 20_000);
    const fromA = webhook.filter((e) => e.node === 'a').map((e) => e.type);
    const mailTypes = mails.filter((m) => m.endsWith(' on a')).map((m) => m.replace('[nimbus-ha] ', '').replace(/ on a$/, ''));
    expect(fromA.indexOf('service_escalated')).toBeLessThan(fromA.indexOf('handover_started'));
    expect(fromA.lastIndexOf('service_restarted')).toBeLessThan(fromA.indexOf('service_escalated'));
    expect(mailTypes).toEqual(fromA);
  });
});
