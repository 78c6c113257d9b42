/**
 * A nimbus-ha pair with a linux-ip VIP inside network namespaces: sidecars in a and b (each with the
 * harness's demo service), the witness in w, clients in c. Shared by the VIP benchmark and the root-only
 * failover system test. Every process is started through the topology, so cleanup kills it by PID.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Topology } from '../../test/helpers/netns.js';
import { TIMING_PROFILES } from '../../src/config/schema.js';
import { startService } from './harness.js';

export const AGENT_PORT = 8700;
export const WITNESS_PORT = 8790;
export const SECRET = randomBytes(32).toString('base64url');
export const ADMIN_TOKEN = randomBytes(32).toString('base64url');
export const DATA_SECRET = randomBytes(32).toString('base64url');

export type PairNode = 'a' | 'b';

export interface NimbusTimings {
  heartbeatMs: number;
  deadAfterMs: number;
  leaseMs: number;
}

export interface NetnsClusterOptions {
  topo: Topology;
  /** Compiled CLI (dist/src/cli/main.js). */
  cliPath: string;
  /** Directory for configs, data dirs and logs. */
  dir: string;
  /** VIP with prefix, e.g. "10.199.7.100/24". */
  vipCidr: string;
  timings?: Partial<NimbusTimings>;
  /** Extra fields of the linux-ip VIP section (dad, arpCount...). */
  vip?: Record<string, unknown>;
  logLevel?: string;
}

/** The parts of GET /status the tests and the bench read. */
export interface AgentStatus {
  role: string;
  epoch: number;
  vip?: { held?: boolean };
  peers?: Array<{ paths?: unknown }>;
  [key: string]: unknown;
}

export interface HaEvent {
  type: string;
  message: string;
  details?: Record<string, unknown>;
  [key: string]: unknown;
}

const other = (n: PairNode): PairNode => (n === 'a' ? 'b' : 'a');

export class NetnsCluster {
  readonly timings: NimbusTimings;
  readonly agents = new Map<PairNode, ChildProcess>();
  readonly services = new Map<PairNode, ChildProcess>();
  witness: ChildProcess | null = null;
  private readonly vipAddress: string;

  constructor(private readonly o: NetnsClusterOptions) {
    const { heartbeatMs, deadAfterMs, leaseMs } = TIMING_PROFILES.fast;
    this.timings = { heartbeatMs, deadAfterMs, leaseMs, ...o.timings };
    this.vipAddress = o.vipCidr.split('/')[0];
  }

  get topo(): Topology {
    return this.o.topo;
  }

  configFile(node: PairNode): string {
    return join(this.o.dir, `${node}.yaml`);
  }

  /** Writes both agent configs (the VIP is managed from inside each node's namespace: no vip.netns). */
  async writeConfigs(): Promise<void> {
    const { topo } = this.o;
    for (const node of ['a', 'b'] as const) {
      const dataDir = join(this.o.dir, `data-${node}`);
      await mkdir(dataDir, { recursive: true });
      const cfg = {
        node,
        listen: { host: topo.node(node).address, port: AGENT_PORT },
        secret: SECRET,
        dataSecret: DATA_SECRET,
        adminToken: ADMIN_TOKEN,
        dataDir,
        preferredPrimary: 'a',
        peers: [{ node: other(node), urls: [`http://${topo.node(other(node)).address}:${AGENT_PORT}`] }],
        witness: { url: `http://${topo.node('w').address}:${WITNESS_PORT}` },
        // The tests and the bench move the role back and forth on purpose: no hold-down between planned moves.
        timings: { ...this.timings, plannedHoldDownMs: 0 },
        vip: { kind: 'linux-ip', address: this.o.vipCidr, interface: 'eth0', ...this.o.vip },
        log: { level: this.o.logLevel ?? 'info' },
      };
      await writeFile(this.configFile(node), stringify(cfg));
    }
  }

  private spawnLogged(node: string, logName: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
    const log = openSync(join(this.o.dir, `${logName}.log`), 'a');
    try {
      // NHA_SECRET/NHA_ADMIN_TOKEN of the caller's environment would override the configs.
      const env = { ...process.env, NHA_SECRET: '', NHA_DATA_SECRET: '', NHA_ADMIN_TOKEN: '', ...extraEnv };
      return this.o.topo.spawn(node, process.execPath, args, { stdio: ['ignore', log, log], env });
    } finally {
      closeSync(log);
    }
  }

  startWitness(): void {
    const addr = `${this.o.topo.node('w').address}:${WITNESS_PORT}`;
    this.witness = this.spawnLogged('w', 'witness', [this.o.cliPath, 'witness', '--listen', addr, '--data-dir', join(this.o.dir, 'data-w')], { NHA_SECRET: SECRET });
  }

  startService(node: PairNode): void {
    this.services.set(node, startService(this.o.topo, node));
  }

  startAgent(node: PairNode): void {
    this.agents.set(node, this.spawnLogged(node, `agent-${node}`, [this.o.cliPath, 'run', '--config', this.configFile(node)]));
  }

  /** Witness, then services and agents of both nodes (a first: it is the preferred primary). */
  async start(): Promise<void> {
    await this.writeConfigs();
    this.startWitness();
    for (const n of ['a', 'b'] as const) this.startService(n);
    for (const n of ['a', 'b'] as const) this.startAgent(n);
  }

  /** kill -9 of the node's sidecar and service (a crash: nothing gets to clean up). */
  async crash(node: PairNode, opts: { service?: boolean } = {}): Promise<void> {
    const victims = [this.agents.get(node), opts.service === false ? undefined : this.services.get(node)];
    for (const c of victims) if (c?.pid) process.kill(c.pid, 'SIGKILL');
    await Promise.all(victims.map((c) => (c ? this.o.topo.kill(c) : undefined)));
    this.agents.delete(node);
    if (opts.service !== false) this.services.delete(node);
  }

  /** Restarts what crash() killed. */
  restart(node: PairNode): void {
    if (!this.services.has(node)) this.startService(node);
    if (!this.agents.has(node)) this.startAgent(node);
  }

  /**
   * An HTTP call to a sidecar, made with curl from `from` (default: the node's own namespace, which
   * reaches the sidecar even while the node is cut off the bridge).
   */
  async http(node: PairNode, path: string, opts: { method?: string; body?: unknown; from?: string } = {}): Promise<{ status: number; body: string } | null> {
    const args = ['-s', '-m', '1', '-o', '-', '-w', '\n%{http_code}'];
    if (opts.method) args.push('-X', opts.method);
    if (opts.body !== undefined) {
      args.push('-H', 'content-type: application/json', '-H', `authorization: Bearer ${ADMIN_TOKEN}`, '--data', JSON.stringify(opts.body));
    }
    args.push(`http://${this.o.topo.node(node).address}:${AGENT_PORT}${path}`);
    const r = await this.o.topo.exec(opts.from ?? node, 'curl', args, 5_000);
    if (r.code !== 0) return null;
    const cut = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
  }

  async status(node: PairNode): Promise<AgentStatus | null> {
    const r = await this.http(node, '/status');
    if (!r || r.status !== 200) return null;
    try {
      return JSON.parse(r.body) as AgentStatus;
    } catch {
      return null;
    }
  }

  async events(node: PairNode, type: string): Promise<HaEvent[]> {
    const r = await this.http(node, `/events?limit=1000&type=${type}`);
    return r && r.status === 200 ? (JSON.parse(r.body) as { events: HaEvent[] }).events : [];
  }

  /** POST /admin/switchover on `node` (the primary) handing the role to `to`; returns the HTTP status. */
  async switchover(node: PairNode, to: PairNode): Promise<number> {
    const r = await this.http(node, '/admin/switchover', { method: 'POST', body: { to } });
    return r?.status ?? 0;
  }

  /** Whether the node's eth0 carries the VIP right now (read from the host: works while isolated). */
  async vipOn(node: PairNode): Promise<boolean> {
    const r = await this.o.topo.exec(node, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0'], 5_000);
    return r.stdout.split('\n').some((l) => l.includes(` ${this.vipAddress}/`));
  }

  /** Polls both statuses until `pred` holds; throws with both roles on timeout. */
  async waitRoles(pred: (a: AgentStatus | null, b: AgentStatus | null) => boolean, timeoutMs: number, what: string): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last: [AgentStatus | null, AgentStatus | null] = [null, null];
    while (Date.now() < until) {
      last = await Promise.all([this.status('a'), this.status('b')]);
      if (pred(last[0], last[1])) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    const show = (s: AgentStatus | null): string => (s ? `${s.role}@${s.epoch}` : 'down');
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; a=${show(last[0])} b=${show(last[1])} (logs in ${this.o.dir})`);
  }

  /** Waits until `primary` is primary and the other node is a standby. */
  async waitSteady(primary: PairNode, timeoutMs = 30_000): Promise<void> {
    await this.waitRoles(
      (a, b) => {
        const [p, s] = primary === 'a' ? [a, b] : [b, a];
        return p?.role === 'primary' && s?.role === 'standby' && s.epoch === p.epoch;
      },
      timeoutMs,
      `${primary} primary and ${other(primary)} standby`,
    );
  }

  /** Which node is primary now (null when none or both say so). */
  async primary(): Promise<PairNode | null> {
    const [a, b] = await Promise.all([this.status('a'), this.status('b')]);
    const pa = a?.role === 'primary';
    const pb = b?.role === 'primary';
    return pa === pb ? null : pa ? 'a' : 'b';
  }
}
