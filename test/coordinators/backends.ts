/**
 * The two Coordinator backends as the contract suite drives them: a real `nimbus-ha witness` process, or
 * a real etcd member with the etcd adapter. Each `fresh()` gives an empty coordinator state (a new
 * witness data directory; a new key prefix on the same etcd), `restart()` restarts the server process of
 * the current state from its disk, `pause()` / `resume()` freeze it (SIGSTOP / SIGCONT) for timeouts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Coordinator } from '../../src/ports.js';
import { PeerClient } from '../../src/peer/client.js';
import { WitnessCoordinator } from '../../adapters/coordinator/witness-client.js';
import { EtcdCoordinator } from '../../adapters/coordinator/etcd.js';
import { cliPath, SECRET } from '../../fixtures/cluster-config.js';
import { freePort } from '../../fixtures/ports.js';
import { waitPort } from '../../fixtures/probes.js';
import type { EtcdCluster } from '../../fixtures/etcd.js';

export interface Backend {
  readonly kind: 'witness' | 'etcd';
  /** An empty coordinator state; `client(node)` is how that node reaches it. */
  fresh(): Promise<void>;
  client(node: string): Coordinator;
  /** Kill the server (SIGKILL) and start it again from its disk. */
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export class WitnessBackend implements Backend {
  readonly kind = 'witness' as const;
  private readonly dir = mkdtempSync(join(tmpdir(), 'nimbus-ha-witness-contract-'));
  private proc: ChildProcess | null = null;
  private port = 0;
  private dataDir = '';
  private n = 0;
  private readonly clients = new Map<string, PeerClient>();

  async fresh(): Promise<void> {
    await this.kill();
    this.dataDir = join(this.dir, `w${this.n++}`);
    this.port = await freePort();
    await this.start();
  }

  private async start(): Promise<void> {
    const log = openSync(join(this.dir, 'witness.log'), 'a');
    this.proc = spawn(process.execPath, [cliPath, 'witness', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir], {
      stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NHA_SECRET: SECRET },
    });
    closeSync(log);
    await waitPort(this.port, 15_000);
  }

  client(node: string): Coordinator {
    let t = this.clients.get(node);
    if (!t) {
      t = new PeerClient(node, SECRET);
      this.clients.set(node, t);
    }
    return new WitnessCoordinator(`http://127.0.0.1:${this.port}`, t);
  }

  private async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    process.kill(p.pid!, 'SIGCONT');
    process.kill(p.pid!, 'SIGKILL');
    await gone;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  pause(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, 'SIGSTOP');
  }

  resume(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, 'SIGCONT');
  }

  async close(): Promise<void> {
    await this.kill();
    for (const c of this.clients.values()) c.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class EtcdBackend implements Backend {
  readonly kind = 'etcd' as const;
  private prefix = '';
  private n = 0;
  private readonly made: EtcdCoordinator[] = [];

  constructor(private readonly etcd: EtcdCluster) {}

  async fresh(): Promise<void> {
    this.prefix = `/nimbus-ha/contract-${process.pid}-${this.n++}/`;
  }

  client(node: string): Coordinator {
    void node; // etcd authenticates clients, not nodes: one adapter per node as in a real pair
    const endpoints = this.etcd.endpoints;
    const c = EtcdCoordinator.create({ endpoints, prefix: this.prefix });
    return lazy(c, (x) => this.made.push(x));
  }

  async restart(): Promise<void> {
    for (let i = 0; i < this.etcd.members.length; i++) await this.etcd.kill(i);
    for (let i = 0; i < this.etcd.members.length; i++) this.etcd.startMember(i);
    for (let i = 0; i < this.etcd.members.length; i++) await this.etcd.waitHealthy(i, 20_000);
  }

  pause(): void {
    for (let i = 0; i < this.etcd.members.length; i++) this.etcd.signal(i, 'SIGSTOP');
  }

  resume(): void {
    for (let i = 0; i < this.etcd.members.length; i++) this.etcd.signal(i, 'SIGCONT');
  }

  async close(): Promise<void> {
    for (const c of this.made) c.close();
  }
}

/** A Coordinator whose adapter is still being made (EtcdCoordinator.create is async). */
function lazy(p: Promise<EtcdCoordinator>, onMade: (c: EtcdCoordinator) => void): Coordinator {
  const ready = p.then((c) => {
    onMade(c);
    return c;
  });
  return {
    describe: () => 'etcd (contract)',
    acquire: (...a) => ready.then((c) => c.acquire(...a)),
    setHolders: (...a) => ready.then((c) => c.setHolders(...a)),
    release: (...a) => ready.then((c) => c.release(...a)),
    read: (...a) => ready.then((c) => c.read(...a)),
  };
}
