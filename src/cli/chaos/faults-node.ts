/**
 * Whole-node faults of `nimbus-ha chaos`: every process of a node killed, double faults (the new primary
 * killed too, while the old one rejoins or before it restarts), a cold restart of both, and planned
 * handovers with a sidecar killed at a random instant.
 */
import { sleep } from './load-types.js';
import { killNode, other, recordNamesBoth, rowsAcked, type FaultCtx, type FaultFn, type Node } from './fault-common.js';

/** Why the standby did not take over when it was not a holder (no violation), else null. */
async function notAHolder(x: FaultCtx, q: Node): Promise<string | null> {
  const s = await x.c.status(q, 1500);
  const na = s?.data_holders?.not_a_holder;
  return na ? `${q} was not a holder (record ${JSON.stringify(s?.data_holders?.holders ?? null)}): it rightly stayed standby, so the double fault was not exercised` : null;
}

export const killWholeNode: FaultFn = async (x, p) => {
  const at = Date.now();
  killNode(x.c, p);
  await x.waitPrimary(other(p), 20_000);
  await sleep(x.rng.int(500, 2000));
  x.restoreAll();
  return { fault: `kill -9 every process of ${p} (primary)`, violations: [], at, notes: {} };
};

/**
 * The first fault of a double fault: kill -9 every process of the primary `p`. Null once `q` took over;
 * otherwise the cycle's result: skipped when the data-holder record left `q` out (it may lack
 * acknowledged writes and rightly stays standby), a violation when the record named it.
 */
async function killForTakeover(x: FaultCtx, p: Node, q: Node, at: number, sep: ';' | ','): Promise<Awaited<ReturnType<FaultFn>> | null> {
  killNode(x.c, p);
  if (await x.waitPrimary(q, 20_000)) return null;
  const why = await notAHolder(x, q);
  x.restoreAll();
  return { fault: `kill -9 ${p} (primary)${sep} ${q} did NOT take over`, violations: why ? [] : [`${q} did not take over within 20 s although the record named it`], at, notes: why ? { skipped: why } : {} };
}

/** Kill the primary node; while it rejoins, kill the new primary (failback-timeline-fork). */
export const timelineFork: FaultFn = async (x, p) => {
  const q = other(p);
  const at = Date.now();
  const missed = await killForTakeover(x, p, q, at, ';');
  if (missed) return missed;
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
export const doubleCrash = (mode: 'stale-first' | 'together'): FaultFn => async (x, p) => {
  const q = other(p);
  const at = Date.now();
  const missed = await killForTakeover(x, p, q, at, ',');
  if (missed) return missed;
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

export const coldRestart: FaultFn = async (x) => {
  const at = Date.now();
  killNode(x.c, 'a');
  killNode(x.c, 'b');
  await sleep(x.rng.int(500, 2000));
  x.restoreAll();
  return { fault: 'kill -9 both nodes, cold restart of both', violations: [], at, notes: {} };
};

/** Planned switchover (or fail-back) with a kill -9 of one sidecar at a random instant. */
export const handoverKill = (kind: 'switchover' | 'failback'): FaultFn => async (x, p) => {
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
