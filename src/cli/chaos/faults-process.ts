/**
 * Process faults of `nimbus-ha chaos`: one process (sidecar, PostgreSQL, Cumulus, VM service, witness)
 * killed or frozen, then restarted or resumed, and the named scenarios built on that (flapping-health,
 * dead-database, hung-standby, zombie-primary).
 */
import type { Cluster } from '../../../fixtures/cluster.js';
import { sleep } from './load-types.js';
import { killVm, other, rowsAcked, type FaultCtx, type FaultFn, type Node } from './fault-common.js';

function pidOf(c: Cluster, n: Node): number | null {
  return c.nodes[n].proc?.pid ?? null;
}

function stopFor(x: FaultCtx): number {
  return Math.round(x.leaseMs * (0.5 + x.rng.next() * 2.5));
}

export const kill = (what: 'sidecar' | 'postgres' | 'cumulus' | 'vm', role: 'primary' | 'standby'): FaultFn => async (x, p) => {
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

export const killWitness: FaultFn = async (x) => {
  const at = Date.now();
  x.c.witness?.kill('SIGKILL');
  x.c.witness = null;
  await sleep(x.rng.int(1000, 4000));
  x.restoreAll();
  return { fault: 'kill -9 witness', violations: [], at, notes: {} };
};

export const freeze = (what: 'sidecar' | 'postgres', role: 'primary' | 'standby', ms?: (x: FaultCtx) => number): FaultFn => async (x, p) => {
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

/** The VM service on the primary dies every few seconds twice: the role must not move. */
export const flappingHealth: FaultFn = async (x, p) => {
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
export const deadDatabase: FaultFn = async (x, p) => {
  const at = Date.now();
  x.c.killDb(p);
  const resumed = await rowsAcked(x, 20, 60_000);
  const violations = resumed ? [] : ['writes did not resume within 60 s after the primary PostgreSQL died'];
  return { fault: `kill -9 postgres on ${p} (primary), no restart by the harness`, violations, at, notes: { resumed_ms: Date.now() - at } };
};

/** The standby's PostgreSQL frozen: writes may stall at most degradeAfterMs plus a bound. */
export const hungStandby = (degradeAfterMs: number): FaultFn => async (x, p) => {
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
export const zombiePrimary: FaultFn = async (x, p) => {
  const dur = Math.max(4000, x.leaseMs * 6);
  const r = await freeze('sidecar', 'primary', () => dur)(x, p);
  return { ...r, fault: `zombie primary: ${r.fault}` };
};
