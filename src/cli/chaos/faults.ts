/**
 * The fault catalogue of `nimbus-ha chaos`. Each fault injects, waits, and undoes what it did (restarts
 * what it killed, resumes what it froze, heals what it cut); the runner then waits for convergence and
 * checks the data. A fault may add expectations of its own (e.g. a coordinator blip must not move the role).
 */
import { readFileSync, renameSync, rmSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Cluster } from '../../../fixtures/cluster.js';
import type { Rng } from './rng.js';
import { sleep, store, type DbCounter } from './load-types.js';
import { originalKey } from '../../replication/repo/quarantine.js';
import { QUARANTINE_PREFIX } from '../../replication/repo/types.js';

export type Node = 'a' | 'b';
export const other = (n: Node): Node => (n === 'a' ? 'b' : 'a');

export interface FaultCtx {
  c: Cluster;
  rng: Rng;
  leaseMs: number;
  rows: DbCounter;
  log: (msg: string) => void;
  /** The current primary (by /status), waiting up to `ms` for one. */
  primary(ms?: number): Promise<Node | null>;
  /** Waits until `n` answers /status with role primary. */
  waitPrimary(n: Node, ms: number): Promise<boolean>;
  /** Restarts whatever of the stack is not running (sidecars, Cumulus, witness). */
  restoreAll(): void;
}

export interface FaultResult {
  /** What was done, e.g. "kill -9 postgres on a (primary)". */
  fault: string;
  /** Node that was primary before the fault. */
  before: Node | null;
  /** Expectations of this scenario that did not hold. */
  violations: string[];
  /** Instant (Date.now) of the first injection. */
  at: number;
  /** Extra observations (guard events...). */
  notes: Record<string, unknown>;
}

type FaultFn = (x: FaultCtx, p: Node) => Promise<Omit<FaultResult, 'before' | 'at'> & { at?: number }>;

/**
 * Whether a node's /status says the data-holder record names both nodes (or that no record is kept). A
 * cycle counts as converged only then: a standby the record leaves out may lack acknowledged writes and
 * rightly refuses to promote, so a double fault started before it is named again tests nothing.
 */
export function recordNamesBoth(s: Record<string, any> | null | undefined): boolean {
  const h = s?.data_holders;
  if (!h || h.kept !== true) return true;
  return Array.isArray(h.holders) && h.holders.includes('a') && h.holders.includes('b');
}

/** Why the standby did not take over when it was not a holder (no violation), else null. */
async function notAHolder(x: FaultCtx, q: Node): Promise<string | null> {
  const s = await x.c.status(q, 1500);
  const na = s?.data_holders?.not_a_holder;
  return na ? `${q} was not a holder (record ${JSON.stringify(s?.data_holders?.holders ?? null)}): it rightly stayed standby, so the double fault was not exercised` : null;
}

function pidOf(c: Cluster, n: Node): number | null {
  return c.nodes[n].proc?.pid ?? null;
}

export function killVm(c: Cluster, n: Node): void {
  c.killVmService(n);
}

export function killNode(c: Cluster, n: Node): void {
  c.kill(n, true);
  c.killDb(n);
  c.killVmService(n);
}

function stopFor(x: FaultCtx): number {
  return Math.round(x.leaseMs * (0.5 + x.rng.next() * 2.5));
}

async function rowsAcked(x: FaultCtx, more: number, ms: number): Promise<boolean> {
  const base = x.rows.count();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (x.rows.count() >= base + more) return true;
    await sleep(50);
  }
  return false;
}

const kill = (what: 'sidecar' | 'postgres' | 'cumulus' | 'vm', role: 'primary' | 'standby'): FaultFn => async (x, p) => {
  const n = role === 'primary' ? p : other(p);
  const at = Date.now();
  if (what === 'sidecar') x.c.kill(n);
  else if (what === 'postgres') x.c.killDb(n);
  else if (what === 'cumulus') {
    x.c.nodes[n].cumulus?.kill('SIGKILL');
    x.c.nodes[n].cumulus = null;
  } else killVm(x.c, n);
  // A killed sidecar or Cumulus is restarted by the harness (as systemd would); PostgreSQL and the VM
  // service are the sidecar's to restart.
  await sleep(x.rng.int(1000, 3000));
  if (what === 'sidecar' && role === 'primary') await x.waitPrimary(other(p), 15_000);
  x.restoreAll();
  return { fault: `kill -9 ${what} on ${n} (${role})`, violations: [], at, notes: {} };
};

const killWitness: FaultFn = async (x) => {
  const at = Date.now();
  x.c.witness?.kill('SIGKILL');
  x.c.witness = null;
  await sleep(x.rng.int(1000, 4000));
  x.restoreAll();
  return { fault: 'kill -9 witness', violations: [], at, notes: {} };
};

const freeze = (what: 'sidecar' | 'postgres', role: 'primary' | 'standby', ms?: (x: FaultCtx) => number): FaultFn => async (x, p) => {
  const n = role === 'primary' ? p : other(p);
  const dur = ms ? ms(x) : stopFor(x);
  const at = Date.now();
  const pid = pidOf(x.c, n);
  if (what === 'sidecar' && pid) process.kill(pid, 'SIGSTOP');
  else if (what === 'postgres') x.c.signalDb(n, 'SIGSTOP');
  try {
    await sleep(dur);
  } finally {
    if (what === 'sidecar' && pid) process.kill(pid, 'SIGCONT');
    else if (what === 'postgres') x.c.signalDb(n, 'SIGCONT');
  }
  return { fault: `SIGSTOP ${what} on ${n} (${role}) for ${dur} ms`, violations: [], at, notes: { stopped_ms: dur } };
};

const cutPaths = (which: 'one' | 'all' | 'lossy'): FaultFn => async (x) => {
  const dur = x.rng.int(2000, 5000);
  const at = Date.now();
  const proxies = [...x.c.nodes.a.inbound, ...x.c.nodes.b.inbound];
  const chosen = which === 'all' ? proxies : [x.c.nodes.a.inbound[0], x.c.nodes.b.inbound[0]];
  for (const p of chosen) which === 'lossy' ? p.setLoss(0.3) : p.down();
  await sleep(which === 'lossy' ? dur * 2 : dur);
  for (const p of chosen) which === 'lossy' ? p.setLoss(0) : p.up();
  const label = which === 'one' ? 'heartbeat path 1 cut' : which === 'all' ? 'both heartbeat paths cut' : 'heartbeat path 1 at 30 % loss';
  return { fault: `${label} for ${which === 'lossy' ? dur * 2 : dur} ms`, violations: [], at, notes: {} };
};

/** The witness unreachable from both nodes: a healthy primary must stay primary (coordinator-blip). */
const witnessCut = (expectStable: boolean): FaultFn => async (x, p) => {
  const dur = Math.max(3000, x.leaseMs * x.rng.int(3, 6));
  const epochBefore = (await x.c.status(p))?.epoch;
  const at = Date.now();
  x.c.nodes.a.witnessLink?.down();
  x.c.nodes.b.witnessLink?.down();
  await sleep(dur);
  const during = await x.c.status(p);
  x.c.nodes.a.witnessLink?.up();
  x.c.nodes.b.witnessLink?.up();
  const violations: string[] = [];
  if (expectStable && during?.role !== 'primary') violations.push(`primary ${p} left the role while only the witness was unreachable (role ${during?.role ?? 'down'}: ${during?.reason ?? ''})`);
  if (expectStable && during?.epoch !== epochBefore) violations.push(`epoch moved ${epochBefore} -> ${during?.epoch} during a witness cut`);
  return { fault: `witness cut from both nodes for ${dur} ms`, violations, at, notes: {} };
};

const killWholeNode: FaultFn = async (x, p) => {
  const at = Date.now();
  killNode(x.c, p);
  await x.waitPrimary(other(p), 20_000);
  await sleep(x.rng.int(500, 2000));
  x.restoreAll();
  return { fault: `kill -9 every process of ${p} (primary)`, violations: [], at, notes: {} };
};

/** Kill the primary node; while it rejoins, kill the new primary (failback-timeline-fork). */
const timelineFork: FaultFn = async (x, p) => {
  const q = other(p);
  const at = Date.now();
  killNode(x.c, p);
  const took = await x.waitPrimary(q, 20_000);
  if (!took) {
    const why = await notAHolder(x, q);
    x.restoreAll();
    return { fault: `kill -9 ${p} (primary); ${q} did NOT take over`, violations: why ? [] : [`${q} did not take over within 20 s although the record named it`], at, notes: why ? { skipped: why } : {} };
  }
  await rowsAcked(x, 50, 15_000);
  x.restoreAll(); // p restarts and begins rejoining
  const delay = x.rng.int(1000, 2500);
  await sleep(delay);
  killNode(x.c, q);
  await sleep(x.rng.int(3000, 6000));
  const stale = await x.c.status(p);
  const violations: string[] = [];
  if (stale?.role === 'primary') violations.push(`${p} (not a holder of ${q}'s writes) became primary while ${q} was down`);
  x.restoreAll();
  return { fault: `kill -9 ${p} (primary); ${q} took over; restart ${p}; kill -9 ${q} ${delay} ms later`, violations, at, notes: { delay_ms: delay } };
};

/** Double fault, then only the stale node restarts first (stale-promotion) or both together (cold start). */
const doubleCrash = (mode: 'stale-first' | 'together'): FaultFn => async (x, p) => {
  const q = other(p);
  const at = Date.now();
  killNode(x.c, p);
  const took = await x.waitPrimary(q, 20_000);
  if (!took) {
    const why = await notAHolder(x, q);
    x.restoreAll();
    return { fault: `kill -9 ${p} (primary), ${q} did NOT take over`, violations: why ? [] : [`${q} did not take over within 20 s although the record named it`], at, notes: why ? { skipped: why } : {} };
  }
  await rowsAcked(x, 100, 20_000);
  killNode(x.c, q);
  await sleep(500);
  const violations: string[] = [];
  if (mode === 'stale-first') {
    x.c.startCumulus(p);
    x.c.startNode(p);
    await sleep(Math.max(6000, x.leaseMs * 4));
    const stale = await x.c.status(p);
    if (stale?.role === 'primary') violations.push(`stale ${p} promoted while holder ${q} was down`);
  }
  x.restoreAll();
  return { fault: `kill -9 ${p} (primary), ${q} takes over and acknowledges alone, kill -9 ${q}; ${mode === 'stale-first' ? `${p} restarts first` : 'both restart together'}`, violations, at, notes: {} };
};

const coldRestart: FaultFn = async (x) => {
  const at = Date.now();
  killNode(x.c, 'a');
  killNode(x.c, 'b');
  await sleep(x.rng.int(500, 2000));
  x.restoreAll();
  return { fault: 'kill -9 both nodes, cold restart of both', violations: [], at, notes: {} };
};

/** Planned switchover (or fail-back) with a kill -9 of one sidecar at a random instant. */
const handoverKill = (kind: 'switchover' | 'failback'): FaultFn => async (x, p) => {
  let note = '';
  if (kind === 'failback' && p === 'a') {
    // fail-back returns the role to a: first hand it to b.
    const r = await x.c.admin('a', '/admin/switchover', { to: 'b' });
    if (r.status !== 202 || !(await x.waitPrimary('b', 30_000))) return { fault: `fail-back: the preparatory switchover to b was not done (${r.status} ${JSON.stringify(r.data).slice(0, 160)})`, violations: [], notes: {} };
    note = 'after a switchover a -> b; ';
    await waitCaughtUp(x, 'b', 60_000);
  }
  const from = kind === 'failback' ? 'b' : p;
  const to = other(from as Node);
  const victim = x.rng.next() < 0.5 ? from : to;
  const delay = x.rng.int(0, 3000);
  const at = Date.now();
  const r = await x.c.admin(from as Node, kind === 'failback' ? '/admin/failback' : '/admin/switchover', kind === 'failback' ? {} : { to });
  await sleep(delay);
  x.c.kill(victim as Node);
  await sleep(x.rng.int(1000, 3000));
  x.restoreAll();
  return { fault: `${note}${kind} ${from} -> ${to} (request ${r.status}), kill -9 sidecar ${victim} after ${delay} ms`, violations: [], at, notes: { request: r.status } };
};

async function waitCaughtUp(x: FaultCtx, primary: Node, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await x.c.status(primary);
    if (s?.role === 'primary' && s?.peers?.[0]?.caught_up === true && recordNamesBoth(s)) return true;
    await sleep(200);
  }
  return false;
}

function guardEvents(evs: any[]): number {
  return evs.filter((e) => /guard/i.test(String(e.type)) || /GUARD/.test(String(e.message ?? '')) || /guard/i.test(JSON.stringify(e.details ?? {}))).length;
}

/** Deletes every uploaded object on the primary's repository; the standby must keep them. */
const massDeleteRepo: FaultFn = async (x, p) => {
  const q = other(p);
  const local = store(`http://127.0.0.1:${x.c.nodes[p].cumulusPort}`);
  const peer = store(`http://127.0.0.1:${x.c.nodes[q].cumulusPort}`);
  const keys: string[] = [];
  for await (const o of local.list('VMS/chaos/')) keys.push(o.key);
  const at = Date.now();
  for (const k of keys) await local.delete(k).catch(() => undefined);
  await sleep(Math.max(3000, x.leaseMs * 4));
  let kept = 0;
  for (const k of keys) if (await peer.head(k).catch(() => null)) kept++;
  const guard = guardEvents(await x.c.events(p).catch(() => [])) + guardEvents(await x.c.events(q).catch(() => []));
  const violations: string[] = [];
  if (keys.length >= 10 && kept < keys.length * 0.9) violations.push(`mass delete of ${keys.length} objects on ${p}: only ${kept} kept on ${q} (the delete guard did not hold)`);
  // The operator restores the deleted objects from the standby: from its bucket, or from the copies its
  // puller moved into quarantine while the deletes it followed stayed within the delete guard.
  const aside = new Map<string, string>();
  try {
    for await (const o of peer.list(QUARANTINE_PREFIX)) {
      const k = originalKey(o.key);
      if (k) aside.set(k, o.key); // listed in order: the newest event's copy last
    }
  } catch {
    /* restored from the bucket only */
  }
  let restored = 0;
  let fromQuarantine = 0;
  for (const k of keys) {
    try {
      const from = (await peer.head(k)) ? k : aside.get(k);
      if (!from) continue;
      if (from !== k) fromQuarantine++;
      const chunks: Buffer[] = [];
      for await (const ch of await peer.get(from)) chunks.push(ch as Buffer);
      const body = Buffer.concat(chunks);
      await local.put(k, Readable.from([body]), body.length);
      restored++;
    } catch {
      /* counted below as not restored */
    }
  }
  local.close();
  peer.close();
  return { fault: `mass delete: ${keys.length} objects deleted on ${p}'s repository (then restored from ${q})`, violations, at, notes: { deleted: keys.length, kept_on_standby: kept, restored, restored_from_quarantine: fromQuarantine, guard_events: guard } };
};

/** Deletes (mass-delete) or empties (empty-source-tree) the primary's config tree; the standby must keep it. */
const filesGone = (mode: 'mass-delete' | 'empty-tree'): FaultFn => async (x, p) => {
  const q = other(p);
  const src = x.c.nodes[p].etcDir;
  const dst = x.c.nodes[q].etcDir;
  const aside = `${src}.chaos-aside`;
  const before = countFiles(join(dst, 'chaos'));
  const at = Date.now();
  // The files leave the tree in one rename (to the sync, a mass delete), so the restore below brings back
  // exactly what was there, including a file written just before that had not reached the standby yet.
  const filesAside = `${src}.chaos-files-aside`;
  if (mode === 'mass-delete') {
    rmSync(filesAside, { recursive: true, force: true });
    renameSync(join(src, 'chaos'), filesAside);
  } else {
    rmSync(aside, { recursive: true, force: true });
    renameSync(src, aside);
    mkdirSync(src);
  }
  await sleep(Math.max(3000, x.leaseMs * 4));
  const kept = countFiles(join(dst, 'chaos'));
  const guard = guardEvents(await x.c.events(p).catch(() => [])) + guardEvents(await x.c.events(q).catch(() => []));
  const violations: string[] = [];
  if (before >= 5 && kept < before * 0.9) violations.push(`${mode} of ${p}'s config tree: ${q} kept ${kept} of ${before} files (the delete guard did not hold)`);
  if (mode === 'empty-tree') {
    // The old tree comes back, and what the load wrote into the empty one meanwhile (acknowledged there)
    // is carried into it: removing it would be the harness losing acknowledged files. Synchronous, so the
    // writer (same event loop) cannot write between the renames.
    const emptied = `${src}.chaos-emptied`;
    rmSync(emptied, { recursive: true, force: true });
    renameSync(src, emptied);
    renameSync(aside, src);
    restoreFiles(join(emptied, 'chaos'), join(src, 'chaos'));
    rmSync(emptied, { recursive: true, force: true });
  } else {
    restoreFiles(filesAside, join(src, 'chaos'));
    rmSync(filesAside, { recursive: true, force: true });
    restoreFiles(join(dst, 'chaos'), join(src, 'chaos'));
  }
  return { fault: `${mode === 'mass-delete' ? 'mass delete of the config tree' : 'config tree replaced by an empty directory'} on ${p} (then restored)`, violations, at, notes: { files_before: before, kept_on_standby: kept, guard_events: guard } };
};

function countFiles(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  } catch {
    /* absent */
  }
  return n;
}

function restoreFiles(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of (() => {
    try {
      return readdirSync(from);
    } catch {
      return [];
    }
  })()) {
    try {
      const body = readFileSync(join(from, name));
      // write only what is missing: a file the writer wrote meanwhile wins
      try {
        readFileSync(join(to, name));
      } catch {
        writeFileSync(join(to, name), body);
      }
    } catch {
      /* skip */
    }
  }
}

/** The VM service on the primary dies every few seconds twice: the role must not move. */
const flappingHealth: FaultFn = async (x, p) => {
  const epochBefore = (await x.c.status(p))?.epoch;
  const at = Date.now();
  for (let i = 0; i < 2; i++) {
    killVm(x.c, p);
    await sleep(Math.max(3000, x.leaseMs * 3));
  }
  const s = await x.c.status(p);
  const violations: string[] = [];
  if (s?.role !== 'primary' || s?.epoch !== epochBefore) violations.push(`two VM-service deaths moved the role (${p}: ${s?.role ?? 'down'}, epoch ${epochBefore} -> ${s?.epoch})`);
  return { fault: `VM service on ${p} killed twice, ${Math.max(3000, x.leaseMs * 3)} ms apart`, violations, at, notes: {} };
};

/** The primary's PostgreSQL dies: writes must resume (restart or failover). */
const deadDatabase: FaultFn = async (x, p) => {
  const at = Date.now();
  x.c.killDb(p);
  const resumed = await rowsAcked(x, 20, 60_000);
  const violations = resumed ? [] : ['writes did not resume within 60 s after the primary PostgreSQL died'];
  return { fault: `kill -9 postgres on ${p} (primary), no restart by the harness`, violations, at, notes: { resumed_ms: Date.now() - at } };
};

/** The standby's PostgreSQL frozen: writes may stall at most degradeAfterMs plus a bound. */
const hungStandby = (degradeAfterMs: number): FaultFn => async (x, p) => {
  const q = other(p);
  const dur = degradeAfterMs * 2 + 4000;
  const at = Date.now();
  x.c.signalDb(q, 'SIGSTOP');
  const resumed = await rowsAcked(x, 20, dur);
  const resumedMs = Date.now() - at;
  await sleep(Math.max(0, dur - resumedMs));
  x.c.signalDb(q, 'SIGCONT');
  const violations = resumed ? [] : [`writes stalled for the whole ${dur} ms freeze of ${q}'s PostgreSQL (degradeAfterMs ${degradeAfterMs})`];
  return { fault: `SIGSTOP postgres on ${q} (standby) for ${dur} ms`, violations, at, notes: { writes_resumed_ms: resumed ? resumedMs : null } };
};

/** The primary's sidecar frozen past a takeover, then resumed (zombie-primary). */
const zombiePrimary: FaultFn = async (x, p) => {
  const dur = Math.max(4000, x.leaseMs * 6);
  const r = await freeze('sidecar', 'primary', () => dur)(x, p);
  return { ...r, fault: `zombie primary: ${r.fault}` };
};

export function catalogue(degradeAfterMs: number): Record<string, FaultFn> {
  return {
    'kill-sidecar-primary': kill('sidecar', 'primary'),
    'kill-sidecar-standby': kill('sidecar', 'standby'),
    'kill-postgres-primary': kill('postgres', 'primary'),
    'kill-postgres-standby': kill('postgres', 'standby'),
    'kill-cumulus-primary': kill('cumulus', 'primary'),
    'kill-cumulus-standby': kill('cumulus', 'standby'),
    'kill-vm-primary': kill('vm', 'primary'),
    'kill-witness': killWitness,
    'kill-node-primary': killWholeNode,
    'stop-sidecar-primary': freeze('sidecar', 'primary'),
    'stop-sidecar-standby': freeze('sidecar', 'standby'),
    'stop-postgres-primary': freeze('postgres', 'primary'),
    'stop-postgres-standby': freeze('postgres', 'standby'),
    'cut-one-path': cutPaths('one'),
    'cut-both-paths': cutPaths('all'),
    'lossy-path': cutPaths('lossy'),
    'witness-cut': witnessCut(false),
    'cold-restart': coldRestart,
    'switchover-kill': handoverKill('switchover'),
    'failback-kill': handoverKill('failback'),
    // named scenarios
    'coordinator-blip': witnessCut(true),
    'zombie-primary': zombiePrimary,
    'stale-promotion': doubleCrash('stale-first'),
    'cold-start-after-double-crash': doubleCrash('together'),
    'failback-timeline-fork': timelineFork,
    'flapping-health': flappingHealth,
    'mass-delete': massDeleteRepo,
    'mass-delete-files': filesGone('mass-delete'),
    'empty-source-tree': filesGone('empty-tree'),
    'dead-database': deadDatabase,
    'hung-standby': hungStandby(degradeAfterMs),
  };
}

export const SCENARIOS = ['coordinator-blip', 'zombie-primary', 'stale-promotion', 'cold-start-after-double-crash', 'failback-timeline-fork', 'flapping-health', 'mass-delete', 'empty-source-tree', 'dead-database', 'hung-standby'];
