/**
 * Planned moves through a real HAProxy with the shipped settings (compose/haproxy.cfg's `defaults`
 * section, word for word) in front of a real pair: the Nimbus-like VM service runs on the primary only,
 * embedded PostgreSQL in sync mode, a witness. An independent client sends a signed DescribeInstances
 * through HAProxy every 10 ms and records every answer; a switchover and then a fail-back must cost it
 * no failed request (slower answers are allowed and reported). HAProxy listens on a UNIX socket in the
 * test's directory, so no port is picked for it. Skips with a message where haproxy is not installed
 * (scripts/install-system-deps.sh installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { PROBE_USER } from '../../fixtures/cluster-config.js';
import { signedV2Request } from '../../adapters/nimbus/ec2-sign.js';
import { sleep, until } from '../helpers/wait.js';
import { doublePrimaryPoller } from '../helpers/double-primary.js';

const haproxyMissing = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status !== 0;
if (haproxyMissing) console.warn('haproxy is not installed: the planned-move test through HAProxy skips (scripts/install-system-deps.sh installs it)');

const shipped = readFileSync(new URL('../../compose/haproxy.cfg', import.meta.url), 'utf8');
const lua = fileURLToPath(new URL('../../compose/nimbus-ha.lua', import.meta.url));

/** The shipped `defaults` section, Lua helper and VM backend rules, with this cluster's addresses. */
function haproxyConfig(socket: string, nodes: Array<{ name: string; servicePort: number; apiPort: number }>): string {
  const defaults = /^defaults\n((?:[ \t]+.*\n|\s*\n)*)/m.exec(shipped)?.[1];
  const backend = /^backend vm_primary\n((?:[ \t]+.*\n)*)/m.exec(shipped)?.[1];
  if (!defaults || !backend) throw new Error('compose/haproxy.cfg has no defaults section or no vm_primary backend');
  const checks = backend.split('\n').filter((l) => l.trim() && !/^\s*server /.test(l));
  return [
    'global',
    '    maxconn 256',
    `    lua-load ${lua}`,
    'defaults',
    ...defaults.split('\n').filter((l) => l.trim() && !/^\s*(log|option\s+httplog)\b/.test(l)),
    'frontend vm',
    `    bind unix@${socket}`,
    '    default_backend vm_primary',
    'backend vm_primary',
    ...checks,
    ...nodes.map((n) => `    server ${n.name} 127.0.0.1:${n.servicePort} check addr 127.0.0.1 port ${n.apiPort}`),
    '',
  ].join('\n');
}

interface Sample {
  t: number;
  ms: number;
  status: number;
  error?: string;
}

/** Signed DescribeInstances through HAProxy's socket, one after another, `everyMs` apart. */
class Client {
  readonly samples: Sample[] = [];
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  constructor(private readonly socket: string, private readonly everyMs: number) {}

  call(): Promise<{ status: number; body: string }> {
    const { init } = signedV2Request({
      endpoint: 'http://vm.nimbus.test/',
      action: 'DescribeInstances',
      params: {},
      credentials: { accessKeyId: PROBE_USER.accessKeyId, secretAccessKey: PROBE_USER.secretAccessKey },
    });
    const body = String(init.body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socket,
          agent: this.agent,
          method: 'POST',
          path: '/',
          headers: { host: 'vm.nimbus.test', ...(init.headers as Record<string, string>), 'content-length': Buffer.byteLength(body) },
          timeout: 10_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.on('error', reject);
      req.end(body);
    });
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t = performance.now();
        try {
          const r = await this.call();
          this.samples.push({ t, ms: performance.now() - t, status: r.status, ...(r.status === 200 ? {} : { error: r.body.slice(0, 200) }) });
        } catch (err) {
          this.samples.push({ t, ms: performance.now() - t, status: 0, error: (err as Error).message });
        }
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.agent.destroy();
  }
}

describe.skipIf(haproxyMissing)('planned moves through HAProxy', () => {
  let c: Cluster;
  let dir: string;
  let haproxy: ChildProcess | null = null;
  let socket: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nha-haproxy-'));
    socket = join(dir, 'vm.sock');
    // The drain the shipped haproxy.cfg asks for: the old primary answers 503 on /primary this long
    // before it stops serving, so HAProxy (inter 500 ms, fall 2, fastinter 250 ms) marks it down first.
    c = new Cluster({ db: { sync: 'sync' }, nimbus: true, timings: { handoverDrainMs: 1500 } });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby');
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(socket, (['a', 'b'] as const).map((n) => ({ name: n, servicePort: c.nodes[n].servicePort, apiPort: c.nodes[n].apiPort }))));
    const check = spawnSync('haproxy', ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy -c: ${check.stderr}`);
    haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (d: Buffer) => process.env.NHA_TEST_DEBUG && process.stderr.write(d));
  });

  afterAll(async () => {
    if (haproxy?.pid && haproxy.exitCode === null) {
      const gone = new Promise((r) => haproxy!.once('exit', r));
      haproxy.kill('SIGTERM');
      await Promise.race([gone, sleep(3_000)]);
      if (haproxy.exitCode === null) haproxy.kill('SIGKILL');
    }
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a switchover and a fail-back cost the client no failed request', async () => {
    const client = new Client(socket, 10);
    // HAProxy has found the primary once twenty calls in a row were answered.
    await until('twenty answers in a row through HAProxy', async () => {
      for (let i = 0; i < 20; i++) if ((await client.call().catch(() => ({ status: 0 }))).status !== 200) return false;
      return true;
    }, 60_000);
    const caughtUp = async (p: 'a' | 'b') => (await c.status(p))?.peers?.[0]?.caught_up === true;
    await until('b caught up', () => caughtUp('a'), 120_000);

    const poll = doublePrimaryPoller(c);
    client.start();
    await sleep(1_000);
    const moves: Array<{ what: string; at: number }> = [];
    moves.push({ what: 'switchover a → b', at: performance.now() });
    const sw = await c.admin('a', '/admin/switchover', { to: 'b' });
    expect(sw.status).toBe(202);
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'b primary after the switchover');
    await until('a caught up again', () => caughtUp('b'), 120_000);
    await sleep(2_000);

    moves.push({ what: 'fail-back b → a', at: performance.now() });
    await until('fail-back accepted', async () => (await c.admin('b', '/admin/failback')).status === 202, 60_000);
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary after the fail-back');
    await sleep(3_000);
    await client.stop();
    // The moves were the planned ones, drained first, never an election behind a draining primary's back.
    const polled = await poll.done();
    expect(polled.both).toBe(0);
    expect((await c.events('b', 'switchover')).length).toBe(1);
    expect((await c.events('a', 'failback')).length).toBe(1);
    expect(await c.events('a', 'failover')).toEqual([]);
    expect(await c.events('b', 'failover')).toEqual([]);
    expect((await c.events('a', 'handover_draining')).length).toBe(1);
    expect((await c.events('b', 'handover_draining')).length).toBe(1);

    const failed = client.samples.filter((s) => s.status !== 200);
    const slowest = Math.max(...client.samples.map((s) => s.ms));
    const around = (m: { at: number }) => client.samples.filter((s) => s.t >= m.at - 500 && s.t <= m.at + 15_000);
    for (const m of moves) {
      const w = around(m);
      console.info(`haproxy: ${m.what}: ${w.length} calls in the 15 s after, ${w.filter((s) => s.status !== 200).length} failed, slowest ${Math.round(Math.max(...w.map((s) => s.ms)))} ms`);
    }
    console.info(`haproxy: ${client.samples.length} calls, ${failed.length} failed, slowest ${Math.round(slowest)} ms`);
    if (process.env.NHA_TEST_DEBUG) for (const s of client.samples) console.info(`${Math.round(s.t - moves[0]!.at)} ${Math.round(s.ms)} ${s.status} ${s.error ?? ''}`);
    expect(client.samples.length).toBeGreaterThan(50);
    expect(failed.map((s) => `${s.status} ${s.error ?? ''}`)).toEqual([]);
  });
});
