/**
 * A throw-away network topology for root-only tests and benchmarks: one namespace per node, a bridge in
 * a namespace of its own, veth pairs, addresses from a private test subnet (10.199.X.0/24). Nothing is
 * added to the host's root namespace. Namespace names carry the creating PID so leftovers of a crashed
 * run can be recognised and removed by a later one.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TopoNode {
  /** Short node name given by the caller ("a", "b", "client"). */
  name: string;
  /** Network namespace of the node. */
  ns: string;
  /** Interface inside the node's namespace (always "eth0"). */
  ifname: string;
  /** The node's own address, without prefix ("10.199.7.2"). */
  address: string;
  /** The node's address with prefix ("10.199.7.2/24"). */
  cidr: string;
  /** MAC address of the node's eth0. */
  mac: string;
  /** Name of the veth end inside the bridge namespace (set down to isolate the node). */
  bridgePort: string;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Topology {
  /** Common prefix of every namespace of this topology ("nha-1234-9f3a"). */
  readonly id: string;
  /** Namespace holding the bridge br0. */
  readonly bridgeNs: string;
  /** "10.199.X" — host N of the subnet is `${subnetBase}.N`. */
  readonly subnetBase: string;
  readonly prefixLen: 24;
  readonly nodes: readonly TopoNode[];
  node(name: string): TopoNode;
  /** A free address in the subnet (not given to any node), for VIPs: host numbers from 100 up. */
  spareAddress(index?: number): string;
  /** Runs a command inside a node's namespace and waits for it (never throws for a non-zero exit). */
  exec(node: string, cmd: string, args?: string[], timeoutMs?: number): Promise<ExecResult>;
  /** Like exec, but throws with the command's stderr when it exits non-zero. */
  run(node: string, cmd: string, args?: string[], timeoutMs?: number): Promise<string>;
  /** Starts a long-running process inside a node's namespace; it is killed (by PID) at cleanup. */
  spawn(node: string, cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
  /** Kills a process started with spawn (SIGKILL by default) and waits until it is gone. */
  kill(child: ChildProcess, signal?: NodeJS.Signals): Promise<void>;
  /** PIDs of every process running in a node's namespace (to crash the whole node with SIGKILL). */
  pids(node: string): number[];
  /** Cuts the node off the bridge (its eth0 keeps its addresses, as in a cable pull). */
  isolate(node: string): Promise<void>;
  /** Reconnects a node cut off by isolate. */
  reconnect(node: string): Promise<void>;
  /** Neighbour (ARP) entry for an address as seen from a node, or null. */
  neighbour(node: string, address: string): Promise<{ mac: string; state: string[] } | null>;
  /** Kills every process in the topology's namespaces and deletes them. Safe to call twice. */
  cleanup(): Promise<void>;
}

/** Why the harness cannot run here, or null when it can (root and iproute2 with netns support). */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network-namespace tests need root (run `sudo npm run test:system`)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
  } catch {
    return '`ip netns` is not usable (install iproute2)';
  }
  return null;
}

const PREFIX = 'nha-';

function ipSync(args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

function execAsync(file: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout: stdout ?? '', stderr: stderr ?? (err ? err.message : '') });
    });
  });
}

async function ip(args: string[]): Promise<string> {
  const r = await execAsync('ip', args, 15_000);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${String(r.code)}`}`);
  return r.stdout;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  try {
    return ipSync(['netns', 'list'])
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((n): n is string => !!n);
  } catch {
    return [];
  }
}

/** Kills every process in our namespace and deletes it; synchronous so it also works in an exit handler. */
function destroyNamespaceSync(ns: string): void {
  for (let round = 0; round < 3; round++) {
    let pids: number[] = [];
    try {
      pids = ipSync(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      break;
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    execFileSync('sleep', ['0.1']);
  }
  try {
    ipSync(['netns', 'del', ns]);
  } catch {
    /* already deleted */
  }
}

/** Removes namespaces left by harness runs whose process no longer exists (a crash skipped cleanup). */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    const m = /^nha-(\d+)-[0-9a-f]+-/.exec(ns);
    if (!m || pidAlive(Number(m[1]))) continue;
    destroyNamespaceSync(ns);
    removed.push(ns);
  }
  return removed;
}

/**
 * Creates the topology: namespaces `${id}-br` (bridge) and `${id}-${node}` per node, node i at
 * `${subnetBase}.${i + 2}`. On any failure half-way the namespaces made so far are removed.
 */
export async function createTopology(opts: { nodes: string[]; subnetOctet?: number }): Promise<Topology> {
  const reason = netnsUnavailableReason();
  if (reason) throw new Error(reason);
  for (const n of opts.nodes) {
    if (!/^[a-z0-9]{1,8}$/.test(n)) throw new Error(`node name "${n}" must be 1-8 lower-case letters/digits`);
  }
  sweepStaleNamespaces();
  const id = `${PREFIX}${process.pid}-${randomBytes(2).toString('hex')}`;
  const octet = opts.subnetOctet ?? 1 + (randomBytes(1)[0] % 254);
  const subnetBase = `10.199.${octet}`;
  const bridgeNs = `${id}-br`;
  const created: string[] = [];
  const children = new Set<ChildProcess>();
  let cleaned = false;

  const cleanupSync = (): void => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) {
      if (c.pid && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of [...created].reverse()) destroyNamespaceSync(ns);
  };
  const onExit = (): void => cleanupSync();
  process.on('exit', onExit);

  const nodes: TopoNode[] = [];
  try {
    await ip(['netns', 'add', bridgeNs]);
    created.push(bridgeNs);
    await ip(['-n', bridgeNs, 'link', 'set', 'lo', 'up']);
    await ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    for (const [i, name] of opts.nodes.entries()) {
      const ns = `${id}-${name}`;
      const bridgePort = `p-${name}`;
      const address = `${subnetBase}.${i + 2}`;
      await ip(['netns', 'add', ns]);
      created.push(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', bridgePort, 'netns', bridgeNs]);
      await ip(['-n', bridgeNs, 'link', 'set', bridgePort, 'master', 'br0']);
      await ip(['-n', bridgeNs, 'link', 'set', bridgePort, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      const link = JSON.parse(await ip(['-n', ns, '-j', 'link', 'show', 'dev', 'eth0'])) as Array<{ address: string }>;
      nodes.push({ name, ns, ifname: 'eth0', address, cidr: `${address}/24`, mac: link[0].address, bridgePort });
    }
  } catch (err) {
    cleanupSync();
    process.off('exit', onExit);
    throw err;
  }

  const node = (name: string): TopoNode => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node "${name}" in topology ${id}`);
    return n;
  };

  const topo: Topology = {
    id,
    bridgeNs,
    subnetBase,
    prefixLen: 24,
    nodes,
    node,
    spareAddress: (index = 0) => `${subnetBase}.${100 + index}`,
    exec: (name, cmd, args = [], timeoutMs = 30_000) =>
      execAsync('ip', ['netns', 'exec', node(name).ns, cmd, ...args], timeoutMs),
    run: async (name, cmd, args = [], timeoutMs = 30_000) => {
      const r = await topo.exec(name, cmd, args, timeoutMs);
      if (r.code !== 0) throw new Error(`[${name}] ${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${String(r.code)}`}`);
      return r.stdout;
    },
    spawn: (name, cmd, args = [], opts = {}) => {
      // `ip netns exec` execs the command in place, so the child's PID is the command's PID.
      const child = spawn('ip', ['netns', 'exec', node(name).ns, cmd, ...args], { stdio: 'pipe', ...opts });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    kill: async (child, signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
    },
    pids: (name) => {
      try {
        return ipSync(['netns', 'pids', node(name).ns]).split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    },
    isolate: async (name) => {
      await ip(['-n', bridgeNs, 'link', 'set', node(name).bridgePort, 'down']);
    },
    reconnect: async (name) => {
      await ip(['-n', bridgeNs, 'link', 'set', node(name).bridgePort, 'up']);
    },
    neighbour: async (name, address) => {
      const out = await ip(['-n', node(name).ns, '-j', 'neigh', 'show', 'to', address, 'dev', 'eth0']);
      const entries = JSON.parse(out || '[]') as Array<{ dst: string; lladdr?: string; state?: string[] }>;
      const e = entries.find((x) => x.dst === address && x.lladdr);
      return e && e.lladdr ? { mac: e.lladdr, state: e.state ?? [] } : null;
    },
    cleanup: async () => {
      cleanupSync();
      process.off('exit', onExit);
    },
  };
  return topo;
}
